"""JAX param tree -> PI0Pytorch state dict (names are the tree paths joined with '.'; LoRA can be merged)."""

from __future__ import annotations

import numpy as np
import torch

from openpi.models import gemma as _gemma


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flat(v, key) if isinstance(v, dict) else {key: v})
    return out


def merge_lora(params: dict, config) -> dict:
    """Fold LoRA adapters into the base weights (W += scale * A @ B) and drop them."""
    import copy

    params = copy.deepcopy(params)
    llm = params["PaliGemma"]["llm"]["layers"]
    for i, variant in enumerate((config.paligemma_variant, config.action_expert_variant)):
        cfg = _gemma.get_config(variant).lora_configs
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
            m = llm[f"mlp{s}"]
            for w in ("gating_einsum", "linear"):
                if f"{w}_lora_a" in m:
                    a, b = np.asarray(m.pop(f"{w}_lora_a"), np.float32), np.asarray(m.pop(f"{w}_lora_b"), np.float32)
                    m[w] = np.asarray(m[w], np.float32) + sc * np.einsum("...ir,...ro->...io", a, b)
    return params


def jax_params_to_torch_state_dict(params: dict, config, *, merge: bool = False) -> dict[str, torch.Tensor]:
    if merge:
        params = merge_lora(params, config)
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in _flat(params).items()}
