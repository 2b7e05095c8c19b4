"""Save / load PyTorch checkpoints: `model.safetensors` in upstream openpi's layout + `config.json`.

Loading accepts (docs/pytorch.md, "Checkpoint layouts"):
- upstream openpi (`convert_jax_model_to_pytorch.py`, `train_pytorch.py`): unprefixed keys, `paligemma.lm_head.weight`
  holding the tied VLM embedding, the expert's unused `gemma_expert.lm_head.weight`;
- LeRobot pi05 / pi0 (`model.` prefix on every key; the current release also writes `embed_tokens.weight` next to
  `lm_head.weight` and that one is authoritative; `lerobot/pi05_base` and the first LeRobot port have `lm_head` only);
- this repository's earlier layout (the JAX tree paths joined with '.', e.g. `PaliGemma.llm.layers.attn.q_einsum.w`).
Every tensor is cast to the model's dtype for it; the model is built on the meta device and the tensors are
assigned, so loading holds each weight once. Nothing here imports jax.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import torch

from openpi.models.pi0_config import Pi0Config
from openpi.models_pytorch import convert
from openpi.models_pytorch import safetensors_io
from openpi.models_pytorch.pi0_pytorch import PI0Pytorch
from openpi.models_pytorch.pi0_pytorch import fp32_param

LM_HEAD = "paligemma_with_expert.paligemma.lm_head.weight"
EMBED = convert.LLM + "embed_tokens.weight"
EXPERT_LM_HEAD = "paligemma_with_expert.gemma_expert.lm_head.weight"
UPSTREAM_CONFIG_FIELDS = ("action_dim", "action_horizon", "paligemma_variant", "action_expert_variant")
# Which config field fixes the shape of a key (for the error message of a shape mismatch).
SHAPE_HINTS = (
    ("position_embedding", "image_resolution"),
    ("patch_embedding", "vision_variant"),
    ("vision_tower", "vision_variant"),
    ("embed_tokens", "paligemma_vocab_size"),
    ("language_model", "paligemma_variant"),
    ("gemma_expert", "action_expert_variant"),
    ("state_proj", "action_dim"),
    ("action_in_proj", "action_dim"),
    ("action_out_proj", "action_dim"),
)


def target_dtype(name: str, precision: str) -> torch.dtype:
    return torch.float32 if precision == "float32" or fp32_param(name) else torch.bfloat16


def build_on_meta(config: Pi0Config) -> PI0Pytorch:
    """The model's structure with no storage (parameters on the meta device)."""
    with torch.device("meta"):
        return PI0Pytorch(config)


# ------------------------------------------------------------------------------------------------------- key map


def map_keys(keys: list[str], config: Pi0Config) -> dict[str, str]:
    """Source keys of a state dict in any supported layout -> {native key: source key} (see the module doc).

    Raises ValueError for a LeRobot proprioceptive-memory checkpoint and for a pi0 / pi0.5 mismatch."""
    proprio = [k for k in keys if "proprio_history_proj" in k]
    if proprio:
        raise ValueError(
            f"checkpoint has {proprio} (LeRobot pi0.5 with use_proprioceptive_memory): openpi's pi0.5 has no "
            "proprioceptive-history projection, so this checkpoint's behaviour cannot be reproduced; refusing to drop it"
        )
    mapping = {(k[len("model.") :] if k.startswith("model.") else k): k for k in keys}
    if EMBED in mapping:
        mapping.pop(LM_HEAD, None)  # current LeRobot: untied, embed_tokens is the trained one
    elif LM_HEAD in mapping:
        mapping[EMBED] = mapping.pop(LM_HEAD)  # upstream / lerobot/pi05_base: the tied name
    mapping.pop(EXPERT_LM_HEAD, None)  # never used in forward; not held in memory
    is_pi05 = "time_mlp_in.weight" in mapping or convert.EXP + "norm.dense.weight" in mapping
    is_pi0 = "state_proj.weight" in mapping
    if is_pi05 and not config.pi05 or is_pi0 and config.pi05:
        what = "pi0.5 (has time_mlp_in / adaptive norms)" if is_pi05 else "pi0 (has state_proj)"
        raise ValueError(f"checkpoint is {what} but the config has pi05={config.pi05}; use the matching config")
    return mapping


def check_keys(mapping: dict[str, str], shapes: dict[str, tuple], expected: dict[str, tuple], source: str) -> None:
    """Raise ValueError naming every missing / unexpected key and every shape mismatch (with the config field)."""
    missing = sorted(set(expected) - set(mapping))
    unexpected = sorted(mapping[k] for k in set(mapping) - set(expected))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    bad = []
    for k in sorted(set(mapping) & set(expected)):
        if tuple(shapes[mapping[k]]) != tuple(expected[k]):
            hint = next((f for s, f in SHAPE_HINTS if s in k), "the model variant")
            bad.append(f"{mapping[k]}: checkpoint {list(shapes[mapping[k]])} vs model {list(expected[k])} ({hint}?)")
    if bad:
        problems.append(f"{len(bad)} shape mismatches: {bad[:5]}")
    if problems:
        raise ValueError(f"{source} does not fit the model config: " + "; ".join(problems))


# ------------------------------------------------------------------------------------------------------ save/load


def config_json(config: Pi0Config, precision: str) -> dict:
    """Upstream converter's five fields first, then every plain field of our Pi0Config."""
    cfg = {k: getattr(config, k) for k in UPSTREAM_CONFIG_FIELDS}
    cfg["precision"] = precision
    for k, v in dataclasses.asdict(config).items():
        if k not in cfg and isinstance(v, (int, float, str, bool, type(None), tuple, list)):
            cfg[k] = list(v) if isinstance(v, tuple) else v
    return cfg


def upstream_state(model: PI0Pytorch, precision: str | None = None) -> tuple[dict, dict[str, str]]:
    """The tensors of an upstream-layout file (+ its header metadata): the VLM embedding under the tied name
    `paligemma.lm_head.weight` (as `safetensors.save_model` writes it), the expert's `lm_head` as zeros."""
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach()
        if precision is not None:
            v = v.to(target_dtype(k, precision))
        state[LM_HEAD if k == EMBED else k] = v
    expert_width = model.action_in_proj.out_features
    emb = state[LM_HEAD]
    state[EXPERT_LM_HEAD] = safetensors_io.Zeros((emb.shape[0], expert_width), emb.dtype)
    return state, {EMBED: LM_HEAD}


def save_pytorch_model(model: PI0Pytorch, out_dir: str | os.PathLike, *, precision: str | None = None) -> pathlib.Path:
    """Write `out_dir/model.safetensors` (upstream layout) and `out_dir/config.json`. `precision` casts while
    writing (bfloat16: upstream's mixed rule); None keeps the model's dtypes."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state, meta = upstream_state(model, precision)
    path = safetensors_io.write(out_dir / "model.safetensors", state, meta)
    precision = precision or ("bfloat16" if model.compute_dtype == torch.bfloat16 else "float32")
    (out_dir / "config.json").write_text(json.dumps(config_json(model.config, precision), indent=2))
    return path


def _legacy_jax_layout(reader: safetensors_io.Reader) -> dict[str, torch.Tensor]:
    flat = {k: reader.get(k).float().numpy() for k in reader.header}
    return convert.jax_to_torch(convert.unflatten(flat, "."))


def load_state_dict(
    model: PI0Pytorch, path: str | os.PathLike, precision: str, *, keep_missing_lora: bool = False
) -> PI0Pytorch:
    """Load a safetensors file of any supported layout into `model` (meta or real), each tensor cast to its
    target dtype and assigned. Raises ValueError naming missing / unexpected keys and shape mismatches.

    `keep_missing_lora`: LoRA adapters absent from the file keep the model's init (fine-tuning a LoRA config from
    a base checkpoint; the model must then be real, not on the meta device)."""
    path = pathlib.Path(path)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if keep_missing_lora:
        with safetensors_io.Reader(path) as reader:
            present = set(map_keys(reader.keys(), model.config))
        expected = {k: v for k, v in expected.items() if ".lora_" not in k or k in present}
    with safetensors_io.Reader(path) as reader:
        keys = reader.keys()
        if any(k.startswith("PaliGemma.") for k in keys):
            tensors = _legacy_jax_layout(reader)
            mapping, shapes = map_keys(list(tensors), model.config), {k: tuple(v.shape) for k, v in tensors.items()}
            get = tensors.pop
        else:
            mapping, shapes, get = map_keys(keys, model.config), {k: reader.shape(k) for k in keys}, reader.get
        check_keys(mapping, shapes, expected, str(path))
        state = {}
        for name in expected:
            state[name] = get(mapping[name]).to(target_dtype(name, precision))
    model.load_state_dict(state, strict=not keep_missing_lora, assign=True)
    model.compute_dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    return model


def resolve_precision(checkpoint_dir: pathlib.Path, config: Pi0Config, precision: str | None) -> str:
    if precision is None:
        cfg_file = checkpoint_dir / "config.json"
        on_disk = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
        precision = on_disk.get("precision") or config.dtype
    if precision not in ("bfloat16", "float32"):
        raise ValueError(f"precision {precision!r}: use bfloat16 or float32")
    return precision


def load_pytorch_model(
    config: Pi0Config,
    checkpoint_dir: str | os.PathLike,
    device: str = "cpu",
    precision: str | None = None,
    *,
    compile_mode: str | None = None,
) -> PI0Pytorch:
    """Build `config`'s model on the meta device and load `checkpoint_dir/model.safetensors` into it.

    `precision`: None -> config.json's `precision`, else `config.dtype`. `compile_mode`: see
    `openpi.models_pytorch.compile.compile_model` (None = eager)."""
    checkpoint_dir = pathlib.Path(checkpoint_dir)
    path = checkpoint_dir if checkpoint_dir.suffix == ".safetensors" else checkpoint_dir / "model.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (convert a JAX checkpoint with `make convert`)")
    precision = resolve_precision(path.parent, config, precision)
    lora_config = "lora" in config.paligemma_variant + config.action_expert_variant
    if lora_config and not any(k.endswith("lora_a") for k in safetensors_io.read_header(path)[0]):
        config = convert.merged_config(config)  # a merged (converted) checkpoint of a LoRA config
    model = load_state_dict(build_on_meta(config), path, precision).to(device).eval()
    if compile_mode is not None:
        from openpi.models_pytorch import compile as _compile

        _compile.compile_model(model, compile_mode)
    return model
