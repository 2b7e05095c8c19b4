"""Checkpoint layouts: the native state dict is upstream openpi's (every key and shape of the fact sheet's lists, full
size, built on the meta device); upstream / LeRobot / our earlier layout load through the key map and give the golden
actions; one test per row of the fact sheet's loader checklist (section 7.1); wrong files fail naming the keys."""

import json
import pathlib
import re

import numpy as np
import pytest
import safetensors.torch
import torch

from openpi.models import model as _model
from openpi.models import pi0_config
from openpi.models_pytorch import convert
from openpi.models_pytorch import loading
from openpi.models_pytorch import safetensors_io
from openpi.models_pytorch.pi0_pytorch import PI0Pytorch

SPEC = pathlib.Path(__file__).resolve().parents[3] / "shared" / "spec"
ATOL = 1e-4
EXPERT_LM_HEAD = loading.EXPERT_LM_HEAD


def _expand(patterns: dict) -> dict[str, list]:
    out = {}
    for pat, info in patterns.items():
        n = info.get("n", 1)
        keys = [pat.replace("{i}", str(i)).replace("{v}", str(i)) for i in range(n)] if n > 1 else [pat]
        out.update({k: info["shape"] for k in keys})
    return out


def tiny(pi05, **kw):
    base = dict(dtype="float32", action_horizon=10, max_token_len=64 if pi05 else 48, pi05=pi05)
    return pi0_config.Pi0Config(**{**pi0_config.TINY, **base, **kw})


def T(x):
    return torch.as_tensor(np.asarray(x))


@pytest.fixture(scope="module")
def golden(golden_dir):
    """Per variant: (config, native float32 state dict from the golden params, observation, noise, golden actions)."""
    mi = np.load(golden_dir / "model_inputs.npz")
    out = {}
    for pi05 in (False, True):
        name = "pi05_tiny" if pi05 else "pi0_tiny"
        v = np.load(golden_dir / name / "vectors.npz")
        state = convert.jax_to_torch(dict(np.load(golden_dir / name / "params_flat.npz")))
        obs = _model.Observation.from_dict(
            {
                "image": {k: T(mi[f"image/{k}"]) for k in _model.IMAGE_KEYS},
                "image_mask": {k: T(mi[f"image_mask/{k}"]) for k in _model.IMAGE_KEYS},
                "state": T(mi["state"]),
                "tokenized_prompt": T(v["obs/tokenized_prompt"]),
                "tokenized_prompt_mask": T(v["obs/tokenized_prompt_mask"]),
            }
        )
        out[pi05] = (tiny(pi05), state, obs, T(mi["noise"]), v["sample_actions/out"])
    return out


def _actions(cfg, path, obs, noise, **kw):
    model = loading.load_pytorch_model(cfg, path, **kw)
    return model.sample_actions("cpu", obs, noise=noise).numpy()


def _write(path: pathlib.Path, tensors: dict) -> pathlib.Path:
    path.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in tensors.items()}, str(path / "model.safetensors"))
    return path


# --------------------------------------------------------------------------------------- the native layout (full size)


@pytest.mark.parametrize("variant", ["pi05", "pi0"])
def test_native_state_dict_is_upstreams_layout_at_full_size(variant):
    upstream = _expand(json.loads((SPEC / "torch_keys_upstream.json").read_text())[variant]["patterns"])
    model = loading.build_on_meta(pi0_config.Pi0Config(pi05=variant == "pi05"))  # 3B params, no storage
    native = {k: list(v.shape) for k, v in model.state_dict().items()}
    # upstream's state_dict = ours + the tied lm_head alias + the expert's unused lm_head
    assert set(upstream) - set(native) == {loading.LM_HEAD, EXPERT_LM_HEAD}
    assert set(native) <= set(upstream)
    assert all(native[k] == upstream[k] for k in native), [k for k in native if native[k] != upstream[k]][:5]
    # the file we write: upstream's file (lm_head name for the embedding, expert lm_head present, no embed_tokens)
    file_state, meta = loading.upstream_state(model)
    assert set(file_state) == set(upstream) - {loading.EMBED}
    assert list(file_state[EXPERT_LM_HEAD].shape) == upstream[EXPERT_LM_HEAD]
    assert meta == {loading.EMBED: loading.LM_HEAD}
    print(f"{variant}: {len(native)} tensors held, {len(file_state)} written")


@pytest.mark.parametrize("variant", ["pi05_float32", "pi0_float32", "pi05_bfloat16"])
def test_lerobot_full_size_key_list_maps_onto_the_model(variant):
    lerobot = _expand(json.loads((SPEC / "torch_keys_lerobot.json").read_text())[variant]["patterns"])
    assert all(k.startswith("model.") for k in lerobot)
    cfg = pi0_config.Pi0Config(pi05=variant.startswith("pi05"))
    model = loading.build_on_meta(cfg)
    mapping = loading.map_keys(list(lerobot), cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    loading.check_keys(mapping, {k: tuple(v) for k, v in lerobot.items()}, expected, variant)  # raises on any gap
    assert mapping[loading.EMBED] == "model." + loading.EMBED  # embed_tokens wins over lm_head


# ------------------------------------------------------------------------------ golden parity through each layout


@pytest.mark.parametrize("pi05", [False, True], ids=["pi0", "pi05"])
def test_upstream_file_from_save_gives_golden_actions(golden, pi05, tmp_path):
    cfg, state, obs, noise, want = golden[pi05]
    model = loading.build_on_meta(cfg)
    model.load_state_dict(state, assign=True)
    loading.save_pytorch_model(model, tmp_path, precision="float32")
    with safetensors_io.Reader(tmp_path / "model.safetensors") as r:  # the same bytes safetensors itself reads
        ref = safetensors.torch.load_file(str(tmp_path / "model.safetensors"))
        assert set(ref) == set(r.keys()) and all(torch.equal(ref[k], r.get(k)) for k in ref)
    assert not ref[EXPERT_LM_HEAD].any() and torch.equal(ref[loading.LM_HEAD], state[loading.EMBED])
    cfg_json = json.loads((tmp_path / "config.json").read_text())
    assert list(cfg_json)[:5] == [
        "action_dim",
        "action_horizon",
        "paligemma_variant",
        "action_expert_variant",
        "precision",
    ]
    np.testing.assert_allclose(_actions(cfg, tmp_path, obs, noise), want, atol=ATOL)


def test_row_model_prefix_and_both_embeddings_lerobot_current(golden, tmp_path):
    """7.1 rows 1 and 3: `model.` prefix; lm_head and embed_tokens differ -> embed_tokens is authoritative."""
    cfg, state, obs, noise, want = golden[True]
    lerobot = {"model." + k: v for k, v in state.items()}
    lerobot["model." + loading.LM_HEAD] = torch.randn_like(state[loading.EMBED])  # stale, untrained copy
    lerobot["model." + EXPERT_LM_HEAD] = torch.zeros(1024, 64)
    np.testing.assert_allclose(_actions(cfg, _write(tmp_path, lerobot), obs, noise), want, atol=ATOL)


@pytest.mark.parametrize("prefix", ["", "model."], ids=["upstream_or_pi05_base", "lerobot_first_port"])
def test_row_lm_head_only(golden, tmp_path, prefix):
    """7.1 row 2: only `lm_head.weight` (upstream files, lerobot/pi05_base, the first LeRobot port)."""
    cfg, state, obs, noise, want = golden[True]
    tensors = {prefix + k: v for k, v in state.items() if k != loading.EMBED}
    tensors[prefix + loading.LM_HEAD] = state[loading.EMBED]
    np.testing.assert_allclose(_actions(cfg, _write(tmp_path, tensors), obs, noise), want, atol=ATOL)


@pytest.mark.parametrize("with_expert_head", [True, False])
def test_row_expert_lm_head_present_or_absent(golden, tmp_path, with_expert_head):
    """7.1 row 4: the expert's lm_head is ignored (never held in memory)."""
    cfg, state, obs, noise, want = golden[False]
    tensors = dict(state)
    if with_expert_head:
        tensors[EXPERT_LM_HEAD] = torch.full((1024, 64), 7.0)
    model = loading.load_pytorch_model(cfg, _write(tmp_path, tensors))
    assert not any("lm_head" in k for k in model.state_dict())
    np.testing.assert_allclose(model.sample_actions("cpu", obs, noise=noise).numpy(), want, atol=ATOL)


def test_row_proprio_history_proj_is_refused(golden, tmp_path):
    """7.1 row 5: LeRobot pi0.5 with proprioceptive memory has no openpi equivalent: refused, named."""
    cfg, state, *_ = golden[True]
    tensors = {"model." + k: v for k, v in state.items()}
    tensors["model.proprio_history_proj.weight"], tensors["model.proprio_history_proj.bias"] = (
        torch.zeros(64, 32),
        torch.zeros(64),
    )
    with pytest.raises(ValueError, match="proprio_history_proj"):
        loading.load_pytorch_model(cfg, _write(tmp_path, tensors))


def test_row_mixed_and_uniform_dtypes_are_cast_per_tensor(golden, tmp_path):
    """7.1 row 6: a bf16 file (uniform) and a LeRobot-bf16-style file (SigLIP fp32, rest bf16) load into float32
    or bfloat16 models; every parameter gets the model's dtype for it."""
    cfg, state, obs, noise, want = golden[True]
    uniform = {k: v.to(torch.bfloat16) for k, v in state.items()}
    mixed = {k: v if "vision_tower" in k else v.to(torch.bfloat16) for k, v in state.items()}
    for name, tensors in (("uniform", uniform), ("mixed", mixed)):
        path = _write(tmp_path / name, tensors)
        fp32 = loading.load_pytorch_model(cfg, path, precision="float32")
        assert {p.dtype for p in fp32.parameters()} == {torch.float32}
        a = fp32.sample_actions("cpu", obs, noise=noise).numpy()
        assert np.abs(a - want).max() < 0.05, name  # bf16-rounded weights
        bf = loading.load_pytorch_model(cfg, path, precision="bfloat16")
        dtypes = {k: v.dtype for k, v in bf.state_dict().items()}
        assert dtypes["action_in_proj.weight"] == torch.float32 and dtypes[loading.EMBED] == torch.bfloat16


def test_row_config_driven_shapes(tmp_path):
    """7.1 row 7: LeRobot's image_resolution / max_action_dim overrides load into the matching Pi0Config and fail
    with the config field named otherwise."""
    cfg = tiny(True, image_resolution=(112, 112), action_dim=16)
    torch.manual_seed(0)
    model = PI0Pytorch(cfg).eval()
    path = _write(tmp_path, {"model." + k: v for k, v in model.state_dict().items()})
    loaded = loading.load_pytorch_model(cfg, path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(ValueError, match=r"position_embedding.*image_resolution"):
        loading.load_pytorch_model(tiny(True, action_dim=16), path)
    with pytest.raises(ValueError, match=r"action_in_proj.*action_dim"):
        loading.load_pytorch_model(tiny(True, image_resolution=(112, 112)), path)


@pytest.mark.parametrize("file_pi05", [False, True], ids=["pi0_file", "pi05_file"])
def test_row_pi0_vs_pi05_is_detected_by_keys(golden, tmp_path, file_pi05):
    """7.1 row 8: the variant comes from the keys (upstream's config.json has no pi05 flag)."""
    _, state, *_ = golden[file_pi05]
    path = _write(tmp_path, state)
    with pytest.raises(ValueError, match="pi0.5 .*pi05=False" if file_pi05 else "pi0 .*pi05=True"):
        loading.load_pytorch_model(tiny(not file_pi05), path)


def test_our_earlier_jax_path_layout_loads(golden, golden_dir, tmp_path):
    """A model.safetensors written by this repository's earlier converter (JAX tree paths joined with '.')."""
    cfg, _, obs, noise, want = golden[True]
    flat = dict(np.load(golden_dir / "pi05_tiny" / "params_flat.npz"))
    path = _write(tmp_path, {k.replace("/", "."): torch.as_tensor(v) for k, v in flat.items()})
    np.testing.assert_allclose(_actions(cfg, path, obs, noise), want, atol=ATOL)


# ----------------------------------------------------------------------------------------------- wrong checkpoints


def test_partial_or_wrong_checkpoint_names_the_keys(golden, tmp_path):
    cfg, state, *_ = golden[True]
    partial = {k: v for k, v in state.items() if "layers.2.mlp" not in k}
    with pytest.raises(ValueError, match=r"6 missing keys: .*language_model\.layers\.2\.mlp\.down_proj\.weight"):
        loading.load_pytorch_model(cfg, _write(tmp_path / "partial", partial))
    extra = {**state, "action_in_proj.scale": torch.zeros(3), "model.extra_head.weight": torch.zeros(2)}
    with pytest.raises(ValueError, match=re.escape("2 unexpected keys: ['action_in_proj.scale', 'model.extra_head")):
        loading.load_pytorch_model(cfg, _write(tmp_path / "extra", extra))
    bigger = dict(state, **{"time_mlp_in.weight": torch.zeros(64, 32)})
    with pytest.raises(ValueError, match=r"time_mlp_in\.weight: checkpoint \[64, 32\] vs model \[64, 64\]"):
        loading.load_pytorch_model(cfg, _write(tmp_path / "shape", bigger))
    with pytest.raises(FileNotFoundError, match="make convert"):
        loading.load_pytorch_model(cfg, tmp_path / "nothing_here")
