"""Torch twin of openpi.models.gemma: shared-attention Gemma experts, adaRMS, LoRA, KV cache."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from openpi.models import gemma as _gemma

BIG_NEG = _gemma.BIG_NEG


def _sfx(i: int) -> str:
    return "" if i == 0 else f"_{i}"


def embed(params: dict, tokens: torch.Tensor, dtype) -> torch.Tensor:
    table = params["embedder"]["input_embedding"]
    x = table[tokens.long()].to(dtype)
    return x * torch.tensor(math.sqrt(table.shape[-1]), dtype=dtype, device=x.device)


def rms_norm(x: torch.Tensor, p: dict, cond=None):
    dtype = x.dtype
    xf = x.float()
    normed = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + 1e-6)
    if "Dense_0" not in p:
        return (normed * (1 + p["scale"].float())).to(dtype), None
    if cond is None:
        raise ValueError("adaptive RMSNorm (pi0.5 action expert) needs adarms_cond")
    d = p["Dense_0"]
    mod = cond @ d["kernel"].to(cond.dtype) + d["bias"].to(cond.dtype)
    if mod.dim() == 2:
        mod = mod[:, None, :]
    scale, shift, gate = mod.float().chunk(3, dim=-1)
    return (normed * (1 + scale) + shift).to(dtype), gate.to(dtype)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, max_wavelength: float = 10_000.0) -> torch.Tensor:
    h = x.shape[-1]
    freq_exponents = 2.0 * torch.arange(h // 2, dtype=torch.float32, device=x.device) / h
    timescale = max_wavelength**freq_exponents
    radians = positions[..., None].float() / timescale[None, None, :]
    radians = radians[..., None, :]
    sin, cos = torch.sin(radians), torch.cos(radians)
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def _einsum_lora(eqn: str, x, p: dict, wkey: str, akey: str, bkey: str, scaling: float, dtype):
    w = p[wkey].to(dtype)
    out = torch.einsum(eqn, x, w)
    if akey in p:
        lhs, out_spec = eqn.split("->")
        x_spec, w_spec = lhs.split(",")
        lead, o_ax = w_spec[:-2], w_spec[-1]
        mid = "".join(c for c in out_spec if c != o_ax) + "r"
        for c in lead:
            if c not in mid:
                mid = c + mid
        xa = torch.einsum(f"{x_spec},{lead}{w_spec[-2]}r->{mid}", x, p[akey].to(dtype))
        out = out + torch.einsum(f"{mid},{lead}r{o_ax}->{out_spec}", xa, p[bkey].to(dtype)) * scaling
    return out


def _proj(eqn, x, p, cfg, dtype):
    return _einsum_lora(eqn, x, p, "w", "lora_a", "lora_b", cfg.scaling if cfg else 1.0, dtype)


def _ffw(x, p, cfg, dtype):
    s = cfg.scaling if cfg else 1.0
    gates = _einsum_lora(
        "BTD,CDF->CBTF", x, p, "gating_einsum", "gating_einsum_lora_a", "gating_einsum_lora_b", s, dtype
    )
    hidden = F.gelu(gates[0], approximate="tanh") * gates[1]
    return _einsum_lora("BTF,FD->BTD", hidden, p, "linear", "linear_lora_a", "linear_lora_b", s, dtype)


def _layer_params(layers: dict, i: int) -> dict:
    return {k: _layer_params(v, i) if isinstance(v, dict) else v[i] for k, v in layers.items()}


def _layer(lp, configs, xs, positions, mask, adarms_cond, dtype, cache_k=None, cache_v=None):
    """One transformer layer over all experts: returns (new xs, this layer's K, V before the cache is prepended)."""
    attn_p = lp["attn"]
    qs, ks, vs, gates = [], [], [], []
    for i, x in enumerate(xs):
        if x is None:
            gates.append(None)
            continue
        s = _sfx(i)
        normed, gate = rms_norm(x, lp[f"pre_attention_norm{s}"], adarms_cond[i])
        gates.append(gate)
        la = configs[i].lora_configs.get("attn")
        qs.append(_proj("BTD,NDH->BTNH", normed, attn_p[f"q_einsum{s}"], la, dtype))
        kv = _proj("BSD,CKDH->CBSKH", normed, attn_p[f"kv_einsum{s}"], la, dtype)
        ks.append(kv[0])
        vs.append(kv[1])
    q, k, v = (torch.cat(t, dim=1) for t in (qs, ks, vs))
    q = apply_rope(q, positions)
    k = apply_rope(k, positions)
    q = q * torch.tensor(q.shape[-1] ** -0.5, dtype=q.dtype, device=q.device)
    k_new, v_new = k, v
    if cache_k is not None:
        k = torch.cat([cache_k, k], dim=1)
        v = torch.cat([cache_v, v], dim=1)
    b, t, n, h = q.shape
    kh = k.shape[2]
    qg = q.reshape(b, t, kh, n // kh, h)
    logits = torch.einsum("BTKGH,BSKH->BKGTS", qg.float(), k.float())
    logits = torch.where(mask[:, None, None, :, :], logits, torch.tensor(BIG_NEG, device=logits.device))
    probs = torch.softmax(logits, dim=-1).to(dtype)
    enc = torch.einsum("BKGTS,BSKH->BTKGH", probs, v).reshape(b, t, n, h)
    start = 0
    outs = []
    for i, x in enumerate(xs):
        if x is None:
            outs.append(None)
            continue
        s, end = _sfx(i), start + x.shape[1]
        la = configs[i].lora_configs.get("attn")
        y = _proj("BTNH,NHD->BTD", enc[:, start:end], attn_p[f"attn_vec_einsum{s}"], la, dtype)
        start = end
        x = x + y if gates[i] is None else x + y * gates[i]
        normed, gate = rms_norm(x, lp[f"pre_ffw_norm{s}"], adarms_cond[i])
        y = _ffw(normed, lp[f"mlp{s}"], configs[i].lora_configs.get("ffn"), dtype)
        outs.append(x + y if gate is None else x + y * gate)
    return outs, k_new, v_new


def forward(
    params,
    configs,
    embedded,
    positions,
    mask,
    adarms_cond=None,
    *,
    kv_cache=None,
    dtype=torch.float32,
    checkpoint: bool = False,
):
    """Same contract as openpi.models.gemma.forward; kv_cache is (K, V) each [L, B, T, K, H].

    `checkpoint`: gradient checkpointing, each layer's activations are recomputed in the backward pass instead of
    stored (less memory for training, ~1/3 more compute); only applies while autograd records."""
    if adarms_cond is None:
        adarms_cond = [None] * len(configs)
    xs = [None if x is None else x.to(dtype) for x in embedded]
    layers = params["layers"]
    ks_all, vs_all = [], []
    recompute = checkpoint and torch.is_grad_enabled()
    for li in range(configs[0].depth):
        lp = _layer_params(layers, li)
        cache = (None, None) if kv_cache is None else (kv_cache[0][li], kv_cache[1][li])
        args = (lp, configs, xs, positions, mask, adarms_cond, dtype, *cache)
        if recompute:
            xs, k, v = torch.utils.checkpoint.checkpoint(_layer, *args, use_reentrant=False)
        else:
            xs, k, v = _layer(*args)
        ks_all.append(k)
        vs_all.append(v)
    final = []
    for i, x in enumerate(xs):
        final.append(None if x is None else rms_norm(x, params[f"final_norm{_sfx(i)}"], adarms_cond[i])[0])
    return final, (torch.stack(ks_all), torch.stack(vs_all))
