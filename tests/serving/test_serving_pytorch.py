"""A converted PyTorch dir (model.safetensors) serves the same actions as the JAX dir for the same obs + noise."""

import shutil

import numpy as np

from openpi.models import model as _model
from openpi.models_pytorch import convert as _convert
from openpi.models_pytorch import loading
from openpi.models_pytorch.pi0_pytorch import PI0Pytorch
from openpi.policies import policy_config


def test_pytorch_dir_matches_jax_dir(tmp_path, tiny_checkpoint):
    from test_serving_policy import _piper_obs

    cfg, step = tiny_checkpoint("pi05_piper_pick_cube", 7, horizon=10)
    params = _model.restore_params(step / "params")
    torch_model = PI0Pytorch(cfg.model)
    torch_model.load_state_dict(_convert.jax_params_to_torch_state_dict(params, cfg.model, merge=True))
    pt_dir = tmp_path / "pt"
    loading.save_pytorch_model(torch_model, pt_dir)
    shutil.copytree(step / "assets", pt_dir / "assets")

    jax_policy = policy_config.create_trained_policy(cfg, step)
    pt_policy = policy_config.create_trained_policy(cfg, pt_dir, pytorch_device="cpu")
    assert policy_config.detect_checkpoint_format(pt_dir) == "pytorch"
    noise = np.random.default_rng(3).normal(size=(10, 32)).astype(np.float32)
    a = jax_policy.infer(_piper_obs(1), noise=noise)["actions"]
    b = pt_policy.infer(_piper_obs(1), noise=noise)["actions"]
    assert b.shape == (10, 7)
    np.testing.assert_allclose(a, b, atol=2e-3, rtol=2e-3)
