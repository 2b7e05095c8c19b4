"""JAX parameter tree (openpi's orbax `params/`) -> PI0Pytorch state dict in upstream openpi's PyTorch layout.

Pure numpy + torch (no jax): the input is the nested dict `openpi.models.model.restore_params` returns (or a flat
dict with '/'- or '.'-joined paths, e.g. a checkpoint written by this repo's earlier converter). The operations are
those of the fact sheet (docs/pytorch.md): kernels transposed to [out, in], einsum weights reshaped head-major,
the k/v and gate/up slices taken apart, the stacked layer axis split into `layers.{i}`. LoRA adapters are either
merged into the weights (`merge=True`, what `make convert` does) or mapped to the torch LoRA parameters.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from openpi.models import variants

VIS = "paligemma_with_expert.paligemma.model.vision_tower.vision_model."
PROJ = "paligemma_with_expert.paligemma.model.multi_modal_projector.linear."
LLM = "paligemma_with_expert.paligemma.model.language_model."
EXP = "paligemma_with_expert.gemma_expert.model."
TOP_LEVEL = ("action_in_proj", "action_out_proj", "time_mlp_in", "time_mlp_out", "state_proj")
TOP_LEVEL += ("action_time_mlp_in", "action_time_mlp_out")


def unflatten(flat: dict, sep: str) -> dict:
    out: dict = {}
    for path, v in flat.items():
        parts = path.split(sep)
        if parts[-1] == "value":  # nnx State leaves written by openpi training
            parts = parts[:-1]
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = v
    return out


def merge_lora(params: dict, config) -> dict:
    """Fold LoRA adapters into the base weights (W += scale * A @ B) and drop them."""
    params = copy.deepcopy(params)
    llm = params["PaliGemma"]["llm"]["layers"]
    for i, variant in enumerate((config.paligemma_variant, config.action_expert_variant)):
        cfg = variants.gemma_config(variant).lora_configs
        s = "" if i == 0 else f"_{i}"
        if "attn" in cfg:
            sc = cfg["attn"].scaling
            for name in (f"q_einsum{s}", f"kv_einsum{s}", f"attn_vec_einsum{s}"):
                p = llm["attn"][name]
                if "lora_a" in p:
                    a, b = np.asarray(p.pop("lora_a"), np.float32), np.asarray(p.pop("lora_b"), np.float32)
                    p["w"] = np.asarray(p["w"], np.float32) + sc * np.einsum("...ir,...ro->...io", a, b)
        if "ffn" in cfg:
            sc = cfg["ffn"].scaling
            mlp = llm[f"mlp{s}"]
            for w in ("gating_einsum", "linear"):
                if f"{w}_lora_a" in mlp:
                    a = np.asarray(mlp.pop(f"{w}_lora_a"), np.float32)
                    b = np.asarray(mlp.pop(f"{w}_lora_b"), np.float32)
                    mlp[w] = np.asarray(mlp[w], np.float32) + sc * np.einsum("...ir,...ro->...io", a, b)
    return params


def merged_config(config):
    """The config of a LoRA-merged model (`*_lora` variants -> their base variants)."""
    import dataclasses

    return dataclasses.replace(
        config,
        paligemma_variant=config.paligemma_variant.replace("_lora", ""),
        action_expert_variant=config.action_expert_variant.replace("_lora", ""),
    )


def _siglip(img: dict, out: dict) -> None:
    for i in range(len(img.get("stem", {}))):  # optional conv stem (SiglipConfig.conv_stem): HWIO -> OIHW
        conv = img["stem"][f"conv_{i}"]
        out[f"{VIS}embeddings.stem.{i}.weight"] = conv["kernel"].transpose(3, 2, 0, 1)
        out[f"{VIS}embeddings.stem.{i}.bias"] = conv["bias"]
    emb = img["embedding"]
    out[VIS + "embeddings.patch_embedding.weight"] = emb["kernel"].transpose(3, 2, 0, 1)
    out[VIS + "embeddings.patch_embedding.bias"] = emb["bias"]
    pos = img["pos_embedding"]
    out[VIS + "embeddings.position_embedding.weight"] = pos.reshape(pos.shape[-2], pos.shape[-1])
    blk = img["Transformer"]["encoderblock"]
    att, mlp = blk["MultiHeadDotProductAttention_0"], blk["MlpBlock_0"]
    for v in range(blk["LayerNorm_0"]["scale"].shape[0]):
        p = f"{VIS}encoder.layers.{v}."
        for j in (0, 1):
            out[f"{p}layer_norm{j + 1}.weight"] = blk[f"LayerNorm_{j}"]["scale"][v]
            out[f"{p}layer_norm{j + 1}.bias"] = blk[f"LayerNorm_{j}"]["bias"][v]
        for jax_name, name in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
            k = att[jax_name]["kernel"][v]  # [D, N, H]
            out[f"{p}self_attn.{name}.weight"] = k.reshape(k.shape[0], -1).T
            out[f"{p}self_attn.{name}.bias"] = att[jax_name]["bias"][v].reshape(-1)
        ko = att["out"]["kernel"][v]  # [N, H, D]
        out[f"{p}self_attn.out_proj.weight"] = ko.reshape(-1, ko.shape[-1]).T
        out[f"{p}self_attn.out_proj.bias"] = att["out"]["bias"][v]
        out[f"{p}mlp.fc1.weight"] = mlp["Dense_0"]["kernel"][v].T
        out[f"{p}mlp.fc1.bias"] = mlp["Dense_0"]["bias"][v]
        out[f"{p}mlp.fc2.weight"] = mlp["Dense_1"]["kernel"][v].T
        out[f"{p}mlp.fc2.bias"] = mlp["Dense_1"]["bias"][v]
    norm = img["Transformer"]["encoder_norm"]
    out[VIS + "post_layernorm.weight"], out[VIS + "post_layernorm.bias"] = norm["scale"], norm["bias"]
    out[PROJ + "weight"], out[PROJ + "bias"] = img["head"]["kernel"].T, img["head"]["bias"]


def _norm(p: dict, i: int | None, name: str, out: dict) -> None:
    take = (lambda x: x) if i is None else (lambda x: x[i])
    if "Dense_0" in p:
        out[f"{name}.dense.weight"] = take(p["Dense_0"]["kernel"]).T
        out[f"{name}.dense.bias"] = take(p["Dense_0"]["bias"])
    else:
        out[f"{name}.weight"] = take(p["scale"])


def _gemma(llm: dict, expert: int, prefix: str, out: dict) -> None:
    s = "" if expert == 0 else f"_{expert}"
    ly, attn = llm["layers"], llm["layers"]["attn"]
    q, kv, o = attn[f"q_einsum{s}"], attn[f"kv_einsum{s}"], attn[f"attn_vec_einsum{s}"]
    mlp = ly[f"mlp{s}"]
    for i in range(q["w"].shape[0]):
        p = f"{prefix}layers.{i}."
        qw = q["w"][i]  # [N, D, H]
        out[p + "self_attn.q_proj.weight"] = qw.transpose(0, 2, 1).reshape(-1, qw.shape[1])
        out[p + "self_attn.k_proj.weight"] = kv["w"][i, 0].transpose(0, 2, 1).reshape(-1, qw.shape[1])
        out[p + "self_attn.v_proj.weight"] = kv["w"][i, 1].transpose(0, 2, 1).reshape(-1, qw.shape[1])
        ow = o["w"][i]  # [N, H, D]
        out[p + "self_attn.o_proj.weight"] = ow.reshape(-1, ow.shape[-1]).T
        out[p + "mlp.gate_proj.weight"] = mlp["gating_einsum"][i, 0].T
        out[p + "mlp.up_proj.weight"] = mlp["gating_einsum"][i, 1].T
        out[p + "mlp.down_proj.weight"] = mlp["linear"][i].T
        if "lora_a" in q:  # unmerged LoRA -> the LoRALinear parameters (same per-head grouping)
            out[p + "self_attn.q_proj.lora_a"], out[p + "self_attn.q_proj.lora_b"] = q["lora_a"][i], q["lora_b"][i]
            for j, name in ((0, "k_proj"), (1, "v_proj")):
                out[f"{p}self_attn.{name}.lora_a"] = kv["lora_a"][i, j]
                out[f"{p}self_attn.{name}.lora_b"] = kv["lora_b"][i, j]
            out[p + "self_attn.o_proj.lora_a"], out[p + "self_attn.o_proj.lora_b"] = o["lora_a"][i], o["lora_b"][i]
        if "gating_einsum_lora_a" in mlp:
            for j, name in ((0, "gate_proj"), (1, "up_proj")):
                out[f"{p}mlp.{name}.lora_a"] = mlp["gating_einsum_lora_a"][i, j][None]
                out[f"{p}mlp.{name}.lora_b"] = mlp["gating_einsum_lora_b"][i, j][None]
            out[p + "mlp.down_proj.lora_a"] = mlp["linear_lora_a"][i][None]
            out[p + "mlp.down_proj.lora_b"] = mlp["linear_lora_b"][i][None]
        _norm(ly[f"pre_attention_norm{s}"], i, p + "input_layernorm", out)
        _norm(ly[f"pre_ffw_norm{s}"], i, p + "post_attention_layernorm", out)
    _norm(llm[f"final_norm{s}"], None, prefix + "norm", out)


def jax_to_torch(params: dict, config=None, *, merge: bool = False) -> dict[str, torch.Tensor]:
    """openpi JAX params (nested dict, or flat with '/' or '.' paths) -> upstream-layout float32 state dict.

    `merge`: fold LoRA adapters into the weights (needs `config` for the LoRA scaling); the result then loads into
    `PI0Pytorch(convert.merged_config(config))`."""
    if params and all(not isinstance(v, dict) for v in params.values()):
        sep = "/" if any("/" in k for k in params) else "."
        params = unflatten(params, sep)
    if "params" in params and set(params) == {"params"}:
        params = params["params"]
    params = _to_numpy(params)
    if merge:
        if config is None:
            raise ValueError("merge=True needs the model config (LoRA scaling)")
        params = merge_lora(params, config)
    out: dict = {}
    _siglip(params["PaliGemma"]["img"], out)
    llm = params["PaliGemma"]["llm"]
    out[LLM + "embed_tokens.weight"] = llm["embedder"]["input_embedding"]
    _gemma(llm, 0, LLM, out)
    _gemma(llm, 1, EXP, out)
    for name in TOP_LEVEL:
        if name in params:
            out[f"{name}.weight"], out[f"{name}.bias"] = params[name]["kernel"].T, params[name]["bias"]
    return {k: torch.from_numpy(_writable(v)) for k, v in out.items()}


def _writable(v) -> np.ndarray:
    a = np.ascontiguousarray(v, dtype=np.float32)
    return a if a.flags.writeable else a.copy()


def _to_numpy(tree: dict) -> dict:
    return {k: _to_numpy(v) if isinstance(v, dict) else np.asarray(v, dtype=np.float32) for k, v in tree.items()}


# Kept for callers of the earlier API (tests, bench): same function.
jax_params_to_torch_state_dict = jax_to_torch
