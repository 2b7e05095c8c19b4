"""SigLIP's optional convolutional stem (SiglipConfig.conv_stem, variant small_conv) in PyTorch: the same numbers as
the JAX model through the converter, its keys in the state dict and in checkpoints (missing ones named), float32 in a
bfloat16 model, and the bad-config error. Configs without a stem keep upstream's layout (the golden / layout tests)."""

import dataclasses
import functools

from flax import nnx
import jax
import jax_init
import numpy as np
import pytest
import safetensors.torch
import torch

from openpi.models import model as _model
from openpi.models import pi0_config
from openpi.models import siglip
from openpi.models import variants
from openpi.models_pytorch import convert
from openpi.models_pytorch import loading
from openpi.models_pytorch import modules
from openpi.models_pytorch.pi0_pytorch import PI0Pytorch

ATOL = 1e-4
EMB = convert.VIS + "embeddings."
# Three stem layers (16 px tokens = 2x2 patches of the 1/8-resolution map), non-square image.
STEM3 = variants.SiglipConfig(width=32, depth=1, mlp_dim=64, num_heads=4, patch=16, conv_stem=(4, 8, 8))


def _cfg(pi05=False, **kw):
    """A tiny pi0 / pi0.5 with the real small_conv SigLIP (the pixel ALOHA-sim tier's) at 32x48 (6 tokens)."""
    base = dict(
        pi05=pi05,
        vision_variant="small_conv",
        image_keys=("base_0_rgb",),
        image_resolution=(32, 48),
        action_horizon=6,
        max_token_len=16,
    )
    return pi0_config.Pi0Config(**{**pi0_config.TINY, **base, **kw})


def _obs(cfg, rng, batch=2):
    h, w = cfg.image_resolution
    return _model.Observation(
        images={k: rng.uniform(-1, 1, (batch, h, w, 3)).astype(np.float32) for k in cfg.image_keys},
        image_masks={k: np.ones(batch, bool) for k in cfg.image_keys},
        state=rng.uniform(-1, 1, (batch, cfg.action_dim)).astype(np.float32),
        tokenized_prompt=rng.integers(0, cfg.paligemma_vocab_size, (batch, cfg.max_token_len)).astype(np.int32),
        tokenized_prompt_mask=np.ones((batch, cfg.max_token_len), bool),
    )


def T(x):
    return torch.as_tensor(np.asarray(x))


@pytest.mark.parametrize(
    ("patch", "stem"),
    [(14, (8, 8)), (16, (4, 4, 4, 4, 4)), (15, (8,))],
)
def test_bad_conv_stem_names_the_field(patch, stem):
    with pytest.raises(ValueError, match=r"divisible by 2\*\*len\(conv_stem\).*conv_stem="):
        variants.SiglipConfig(width=32, depth=1, mlp_dim=64, num_heads=4, patch=patch, conv_stem=stem)


def test_siglip_tokens_with_a_three_layer_stem_match_jax():
    """jitted JAX siglip.forward vs the torch SigLIP + projector on the converted params (random, biases included;
    numpy-filled from the init's shapes, which skips compiling the init)."""
    init = functools.partial(siglip.init_params, cfg=STEM3, num_classes=24, image_size=(32, 48))
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        x = 0.1 * rng.normal(size=leaf.shape).astype(np.float32)
        return 1 + x if path[-1].key == "scale" else x

    params = jax.tree_util.tree_map_with_path(fill, jax.eval_shape(init, jax.random.key(0)))
    image = rng.uniform(-1, 1, (2, 32, 48, 3)).astype(np.float32)
    tokens, inter = jax.jit(functools.partial(siglip.forward, return_intermediates=True))(params, image)

    state: dict = {}
    convert._siglip(convert._to_numpy(params), state)
    assert state[EMB + "stem.0.weight"].shape == (4, 3, 3, 3) and state[EMB + "stem.2.weight"].shape == (8, 8, 3, 3)
    assert state[EMB + "patch_embedding.weight"].shape == (32, 8, 2, 2)  # stem_patch = 16 / 2**3
    tower, proj = modules.SiglipVisionTower(STEM3, (32, 48)), modules.MultiModalProjector(32, 24)
    tower_prefix = convert.VIS[: -len("vision_model.")]
    tower.load_state_dict({k[len(tower_prefix) :]: T(v) for k, v in state.items() if k.startswith(tower_prefix)})
    proj.load_state_dict(
        {"linear." + k[len(convert.PROJ) :]: T(v) for k, v in state.items() if k.startswith(convert.PROJ)}
    )
    x = T(image).permute(0, 3, 1, 2)
    with torch.no_grad():
        emb = tower.vision_model.embeddings(x)
        out = proj.linear(tower.vision_model(x, torch.float32))
    assert out.shape == (2, 6, 24) and out.std() > 0.1
    emb_diff = np.abs(emb.numpy() - np.asarray(inter["with_posemb"])).max()
    tok_diff = np.abs(out.numpy() - np.asarray(tokens)).max()
    print(f"stem(4,8,8) SigLIP parity: embeddings max |diff| {emb_diff:.2e}, tokens {tok_diff:.2e}")
    assert emb_diff < ATOL and tok_diff < ATOL


@pytest.mark.parametrize("pi05", [False, True], ids=["pi0", "pi05"])
def test_small_conv_model_matches_jax(pi05):
    """jax_init.torch_model_from_jax_init holds the JAX init (stem included); with the SigLIP head and the stem
    biases made non-zero (openpi's init zeroes the head, i.e. the image tokens) image tokens, actions and loss match."""
    cfg = _cfg(pi05)
    jax_model = cfg.create(jax.random.key(3))
    state = nnx.state(jax_model)
    params = state.to_pure_dict()
    torch_model = jax_init.torch_model_from_jax_init(cfg, seed=3)
    kernel = np.asarray(params["PaliGemma"]["img"]["stem"]["conv_1"]["kernel"])
    assert kernel.shape == (3, 3, 32, 64)  # HWIO -> OIHW
    np.testing.assert_array_equal(torch_model.state_dict()[EMB + "stem.1.weight"].numpy(), kernel.transpose(3, 2, 0, 1))

    rng = np.random.default_rng(1)
    img = params["PaliGemma"]["img"]
    img["head"]["kernel"] = 0.2 * rng.normal(size=img["head"]["kernel"].shape).astype(np.float32)
    for conv in img["stem"].values():
        conv["bias"] = 0.1 * rng.normal(size=conv["bias"].shape).astype(np.float32)
    state.replace_by_pure_dict(params)
    nnx.update(jax_model, state)
    torch_model.load_state_dict(convert.jax_to_torch(params, cfg))

    obs = _obs(cfg, rng)
    noise = rng.normal(size=(2, cfg.action_horizon, cfg.action_dim)).astype(np.float32)
    actions = rng.uniform(-1, 1, noise.shape).astype(np.float32)
    time = np.array([0.3, 0.8], np.float32)
    tok_jax = np.asarray(jax_model.embed_image(obs.images["base_0_rgb"]))
    a_jax = np.asarray(jax_model.sample_actions(jax.random.key(0), obs, noise=noise))
    loss_jax = np.asarray(jax_model.compute_loss(jax.random.key(0), obs, actions, noise=noise, time=time))
    t_obs = jax.tree.map(T, obs)
    with torch.no_grad():
        tok_t = torch_model.embed_image(t_obs.images["base_0_rgb"]).numpy()
        a_t = torch_model.sample_actions("cpu", t_obs, noise=T(noise)).numpy()
        loss_t = torch_model.compute_loss(t_obs, T(actions), noise=T(noise), time=T(time)).numpy()
    assert tok_jax.shape == (2, 6, 64) and tok_jax.std() > 0.1  # the image reaches the tokens
    diffs = [np.abs(a - b).max() for a, b in ((tok_t, tok_jax), (a_t, a_jax), (loss_t, loss_jax))]
    print(f"small_conv {'pi05' if pi05 else 'pi0'} parity max |diff|: image tokens {diffs[0]:.2e}, ", end="")
    print(f"actions {diffs[1]:.2e}, loss {diffs[2]:.2e}")
    np.testing.assert_allclose(tok_t, tok_jax, atol=ATOL)
    np.testing.assert_allclose(a_t, a_jax, atol=ATOL)
    np.testing.assert_allclose(loss_t, loss_jax, atol=ATOL)


def test_stem_keys_save_load_bf16_and_missing_ones_are_named(tmp_path):
    cfg = _cfg()
    torch.manual_seed(0)
    model = PI0Pytorch(cfg).eval()  # torch-native init
    state = model.state_dict()
    shapes = {k[len(EMB) :]: tuple(v.shape) for k, v in state.items() if k.startswith(EMB)}
    assert shapes == {
        "stem.0.weight": (32, 3, 3, 3),
        "stem.0.bias": (32,),
        "stem.1.weight": (64, 32, 3, 3),
        "stem.1.bias": (64,),
        "patch_embedding.weight": (96, 64, 4, 4),
        "patch_embedding.bias": (96,),
        "position_embedding.weight": (6, 96),
    }
    assert float(state[EMB + "stem.1.weight"].std()) == pytest.approx((9 * 32) ** -0.5, rel=0.1)  # lecun-normal
    assert not state[EMB + "stem.1.bias"].any()

    loading.save_pytorch_model(model, tmp_path / "ok", precision="float32")
    loaded = loading.load_pytorch_model(cfg, tmp_path / "ok")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in state.items())
    obs = jax.tree.map(T, _obs(cfg, np.random.default_rng(2)))
    noise = torch.randn(2, cfg.action_horizon, cfg.action_dim)
    want = model.sample_actions("cpu", obs, noise=noise)
    assert torch.equal(loaded.sample_actions("cpu", obs, noise=noise), want)
    bf = loading.load_pytorch_model(cfg, tmp_path / "ok", precision="bfloat16")
    emb = bf.paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings
    assert {p.dtype for p in emb.stem.parameters()} == {torch.float32}  # run in fp32, as the JAX stem
    a_bf = bf.sample_actions("cpu", obs, noise=noise)
    assert torch.isfinite(a_bf).all() and (a_bf - want).abs().max() < 0.1

    (tmp_path / "partial").mkdir()
    partial = {k: v for k, v in state.items() if ".stem." not in k}
    safetensors.torch.save_file(partial, str(tmp_path / "partial" / "model.safetensors"))
    with pytest.raises(ValueError, match=r"4 missing keys: .*embeddings\.stem\.0\.bias.*embeddings\.stem\.1\.weight"):
        loading.load_pytorch_model(cfg, tmp_path / "partial")
    # A checkpoint of the stem-less small variant: the stem keys and the patch embedding's shape, with the field.
    plain = PI0Pytorch(dataclasses.replace(cfg, vision_variant="small", image_resolution=(28, 42)))
    loading.save_pytorch_model(plain, tmp_path / "plain", precision="float32")
    with pytest.raises(
        ValueError, match=r"4 missing keys: .*stem\.0\.weight.*patch_embedding\.weight: .*vision_variant"
    ):
        loading.load_pytorch_model(cfg, tmp_path / "plain")


def test_configs_without_a_stem_have_no_stem_parameters():
    for variant in ("tiny", "small"):
        model = loading.build_on_meta(_cfg(vision_variant=variant, image_resolution=(28, 42)))
        assert not any(".stem." in k for k in model.state_dict())
