"""Pi0Config.image_keys / image_resolution: only the listed camera slots are embedded, at the given resolution,
identically in JAX and PyTorch; the defaults keep upstream's three 224x224 slots."""

import dataclasses

from flax import nnx
import jax
import numpy as np
import pytest
import torch

from openpi.models import model as _model
from openpi.models import pi0_config
from openpi.models_pytorch.convert import jax_params_to_torch_state_dict
from openpi.models_pytorch.pi0_pytorch import PI0Pytorch
from openpi.training import config as _config
import openpi.transforms as _transforms

ATOL = 1e-4


def _cfg(**kw):
    base = dict(
        pi05=True,
        dtype="float32",
        paligemma_variant="dummy",
        action_expert_variant="dummy",
        vision_variant="tiny",
        paligemma_vocab_size=1024,
        action_horizon=6,
        max_token_len=24,
    )
    return pi0_config.Pi0Config(**{**base, **kw})


def test_defaults_are_upstreams():
    cfg = pi0_config.Pi0Config(pi05=True)
    assert cfg.image_keys == _model.IMAGE_KEYS and cfg.image_resolution == (224, 224)
    obs, _ = cfg.inputs_spec()
    assert list(obs.images) == list(_model.IMAGE_KEYS) and obs.images["base_0_rgb"].shape[1:3] == (224, 224)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"image_keys": ("top",)}, "camera slots"),
        ({"image_keys": ()}, "camera slots"),
        ({"image_resolution": (100, 112)}, "multiple of the SigLIP patch"),
    ],
)
def test_bad_fields_name_the_fix(kw, match):
    with pytest.raises(ValueError, match=match):
        _cfg(**kw)


def test_one_camera_low_resolution_matches_between_jax_and_torch():
    cfg = _cfg(image_keys=("base_0_rgb",), image_resolution=(56, 42))
    model = cfg.create(jax.random.key(3))
    params = nnx.state(model).to_pure_dict()
    # The position embedding is sized to the 4 x 3 patch grid.
    assert params["PaliGemma"]["img"]["pos_embedding"].shape == (1, 12, 32)
    rng = np.random.default_rng(0)
    # The observation carries all three slots (as AlohaInputs produces them); only base_0_rgb may matter.
    images = {k: rng.uniform(-1, 1, (2, 56, 42, 3)).astype(np.float32) for k in _model.IMAGE_KEYS}
    obs = _model.Observation(
        images=images,
        image_masks={k: np.ones(2, bool) for k in _model.IMAGE_KEYS},
        state=rng.uniform(-1, 1, (2, 32)).astype(np.float32),
        tokenized_prompt=rng.integers(0, 1024, (2, 24)).astype(np.int32),
        tokenized_prompt_mask=np.ones((2, 24), bool),
    )
    prefix_tokens, _, _ = model.embed_prefix(model.preprocess(None, obs, train=False))
    assert prefix_tokens.shape[1] == 12 + 24  # one camera's 12 patches + the text: masked slots are not computed
    noise = rng.normal(size=(2, 6, 32)).astype(np.float32)
    a_jax = np.asarray(model.sample_actions(jax.random.key(0), obs, noise=noise))
    other = dataclasses.replace(obs, images={**images, "left_wrist_0_rgb": np.zeros_like(images["base_0_rgb"])})
    np.testing.assert_array_equal(np.asarray(model.sample_actions(jax.random.key(0), other, noise=noise)), a_jax)

    torch_model = PI0Pytorch(cfg)
    torch_model.load_state_dict(jax_params_to_torch_state_dict(params, cfg))
    t_obs = jax.tree.map(lambda x: torch.as_tensor(np.asarray(x)), obs)
    a_t = torch_model.sample_actions("cpu", t_obs, noise=torch.as_tensor(noise)).numpy()
    np.testing.assert_allclose(a_t, a_jax, atol=ATOL)
    loss_t = torch_model.compute_loss(t_obs, torch.as_tensor(noise), noise=torch.as_tensor(noise), time=torch.ones(2))
    loss_j = model.compute_loss(jax.random.key(0), obs, noise, noise=noise, time=np.ones(2, np.float32))
    np.testing.assert_allclose(loss_t.detach().numpy(), np.asarray(loss_j), atol=ATOL)


def test_model_transforms_select_and_resize_the_configs_cameras():
    cfg = _cfg(image_keys=("base_0_rgb",), image_resolution=(56, 42))
    group = _config.ModelTransformFactory(default_prompt="go", tokenizer_path=_config.DEBUG_TOKENIZER)(cfg)
    img = np.zeros((120, 160, 3), np.uint8)
    data = {
        "image": {k: img for k in _model.IMAGE_KEYS},
        "image_mask": {k: np.True_ for k in _model.IMAGE_KEYS},
        "state": np.zeros(14, np.float32),
    }
    out = _transforms.compose(group.inputs)(data)
    assert list(out["image"]) == ["base_0_rgb"] and out["image"]["base_0_rgb"].shape == (56, 42, 3)
    assert list(out["image_mask"]) == ["base_0_rgb"]
    with pytest.raises(ValueError, match=r"missing \['base_0_rgb'\]"):
        _transforms.SelectImages(("base_0_rgb",))({"image": {"left_wrist_0_rgb": img}})


def test_small_aloha_sim_configs():
    pixels = _config.get_config("pi0_aloha_sim_small")
    priv = _config.get_config("pi0_aloha_sim_small_privileged")
    assert pixels.model.image_keys == ("base_0_rgb",) and pixels.model.image_resolution == (96, 144)
    assert pixels.model.vision_variant == "small_conv" and priv.model.vision_variant == "small"
    assert priv.model.image_keys == ("base_0_rgb",) and priv.model.image_resolution == (112, 112)
    assert pixels.model.action_horizon == 50 and pixels.frame_cache
    assert not pixels.model.pi05 and not pixels.model.discrete_state_input  # continuous state token
    assert priv.data.env_state_dim == 7 and pixels.data.env_state_dim == 0
    assert pixels.data.image_crop is not None and priv.data.image_crop is None
    assert _config.get_config("pi05_aloha_sim_small_privileged").model.max_token_len == 112
    # The real configs keep upstream's defaults.
    for name in ("pi0_aloha_sim", "pi05_aloha", "pi05_piper_pick_cube", "pi05_flexiv_pose_train"):
        m = _config.get_config(name).model
        assert m.image_keys == _model.IMAGE_KEYS and m.image_resolution == (224, 224)
