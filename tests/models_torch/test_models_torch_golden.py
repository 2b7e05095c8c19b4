"""PyTorch pi0 / pi0.5 against the golden vectors, JAX parity on random params, LoRA merge, make convert."""

import dataclasses
import json
import pathlib
import shutil
import sys

from flax import nnx
import jax
import numpy as np
import pytest
import torch

from openpi.models import model as _model
from openpi.models import pi0_config
from openpi.models_pytorch import loading
from openpi.models_pytorch.convert import jax_params_to_torch_state_dict
from openpi.models_pytorch.pi0_pytorch import PI0Pytorch

ATOL = 1e-4
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def tiny(pi05, **kw):
    base = dict(
        dtype="float32",
        paligemma_variant="dummy",
        action_expert_variant="dummy",
        action_horizon=10,
        max_token_len=64 if pi05 else 48,
        pi05=pi05,
        vision_variant="tiny",
        paligemma_vocab_size=1024,
    )
    return pi0_config.Pi0Config(**{**base, **kw})


def T(x):
    return torch.as_tensor(np.asarray(x))


@pytest.mark.parametrize("pi05", [False, True], ids=["pi0", "pi05"])
def test_golden_loss_and_actions(golden_dir, pi05, tmp_path):
    """upstream's orbax params -> convert -> save (upstream layout) -> load (meta + assign) -> golden vectors."""
    name = "pi05_tiny" if pi05 else "pi0_tiny"
    cfg = tiny(pi05)
    converted = PI0Pytorch(cfg)
    converted.load_state_dict(jax_params_to_torch_state_dict(_model.restore_params(golden_dir / name / "params"), cfg))
    loading.save_pytorch_model(converted, tmp_path, precision="float32")
    model = loading.load_pytorch_model(cfg, tmp_path)
    assert all(p.device.type == "cpu" for p in model.parameters())
    mi, v = np.load(golden_dir / "model_inputs.npz"), np.load(golden_dir / name / "vectors.npz")
    obs = _model.Observation.from_dict(
        {
            "image": {k: T(mi[f"image/{k}"]) for k in _model.IMAGE_KEYS},  # uint8 NHWC, converted like upstream
            "image_mask": {k: T(mi[f"image_mask/{k}"]) for k in _model.IMAGE_KEYS},
            "state": T(mi["state"]),
            "tokenized_prompt": T(v["obs/tokenized_prompt"]),
            "tokenized_prompt_mask": T(v["obs/tokenized_prompt_mask"]),
        }
    )
    loss = model.compute_loss(obs, T(mi["actions"]), noise=T(mi["noise"]), time=T(v["compute_loss/time_used"]))
    np.testing.assert_allclose(loss.detach().numpy(), v["compute_loss/out"], atol=ATOL)
    per_elem = model(obs, T(mi["actions"]), noise=T(mi["noise"]), time=T(v["compute_loss/time_used"]))
    assert per_elem.shape == (2, 10, 32)
    actions = model.sample_actions("cpu", obs, noise=T(mi["noise"]))
    np.testing.assert_allclose(actions.numpy(), v["sample_actions/out"], atol=ATOL)
    np.testing.assert_allclose(
        model.sample_actions("cpu", obs, noise=T(mi["noise"]), num_steps=1).numpy(),
        v["sample_actions_1step/out"],
        atol=ATOL,
    )


def test_lora_checkpoint_merges_and_matches_jax():
    cfg = tiny(
        True, paligemma_variant="dummy_lora", action_expert_variant="dummy_lora", action_horizon=4, max_token_len=16
    )
    jax_model = cfg.create(jax.random.key(7))
    params = nnx.state(jax_model).to_pure_dict()
    merged_cfg = dataclasses.replace(cfg, paligemma_variant="dummy", action_expert_variant="dummy")
    tm = PI0Pytorch(merged_cfg)
    tm.load_state_dict(jax_params_to_torch_state_dict(params, cfg, merge=True))
    obs = cfg.fake_obs(2)
    noise = np.random.default_rng(0).normal(size=(2, 4, 32)).astype(np.float32)
    a_jax = np.asarray(jax_model.sample_actions(jax.random.key(0), obs, noise=noise))
    a_t = tm.sample_actions("cpu", jax.tree.map(T, obs), noise=T(noise)).numpy()
    np.testing.assert_allclose(a_t, a_jax, atol=ATOL)


def test_make_convert_writes_servable_dir_and_reports_parity(golden_dir, tmp_path):
    ckpt = tmp_path / "pi05_tiny" / "100"
    shutil.copytree(golden_dir / "pi05_tiny" / "params", ckpt / "params")
    shutil.copytree(golden_dir / "pi05_tiny" / "assets", ckpt / "assets")
    out = tmp_path / "torch"
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import convert_jax_model_to_pytorch as conv
    finally:
        sys.path.pop(0)
    from openpi.training import config as _config

    base = _config.get_config("debug_pi05")
    cfg = dataclasses.replace(base, model=tiny(True))
    orig = _config._CONFIGS_DICT.copy()
    _config._CONFIGS_DICT["tiny_golden_pi05"] = dataclasses.replace(cfg, name="tiny_golden_pi05")
    try:
        report = conv.convert(conv.Args("tiny_golden_pi05", str(ckpt), str(out), precision="float32"))
    finally:
        _config._CONFIGS_DICT.clear()
        _config._CONFIGS_DICT.update(orig)
    assert report["max_abs_diff_fp32"] < ATOL
    assert (out / "model.safetensors").exists() and (out / "assets/golden_tiny/norm_stats.json").exists()
    assert json.loads((out / "config.json").read_text())["pi05"] is True
    model = loading.load_pytorch_model(tiny(True), out)
    mi, v = np.load(golden_dir / "model_inputs.npz"), np.load(golden_dir / "pi05_tiny" / "vectors.npz")
    obs = _model.Observation.from_dict(
        {
            "image": {k: T(mi[f"image/{k}"]) for k in _model.IMAGE_KEYS},
            "image_mask": {k: T(mi[f"image_mask/{k}"]) for k in _model.IMAGE_KEYS},
            "state": T(mi["state"]),
            "tokenized_prompt": T(v["obs/tokenized_prompt"]),
            "tokenized_prompt_mask": T(v["obs/tokenized_prompt_mask"]),
        }
    )
    np.testing.assert_allclose(
        model.sample_actions("cpu", obs, noise=T(mi["noise"])).numpy(), v["sample_actions/out"], atol=ATOL
    )
    # bf16 weights keep norms / patch+position embeddings in fp32 and still produce finite, close actions
    bf = loading.load_pytorch_model(tiny(True), out, precision="bfloat16")
    pg = bf.paligemma_with_expert.paligemma.model
    assert pg.language_model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert pg.vision_tower.vision_model.embeddings.position_embedding.weight.dtype == torch.float32
    assert pg.language_model.norm.weight.dtype == torch.float32
    assert bf.action_in_proj.weight.dtype == torch.float32  # top-level projections stay fp32, as upstream
    a_bf = bf.sample_actions("cpu", obs, noise=T(mi["noise"])).numpy()
    assert np.isfinite(a_bf).all() and np.abs(a_bf - v["sample_actions/out"]).max() < 0.1
