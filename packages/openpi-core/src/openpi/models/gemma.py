"""Gemma with several experts sharing one attention (PaliGemma 2B + action expert), as in upstream openpi.

Parameter tree (under `PaliGemma/llm`, layer axis first): `embedder/input_embedding`, `layers/attn/{q,kv,attn_vec}_einsum[_i]/w`,
`layers/mlp[_i]/{gating_einsum,linear}`, `layers/pre_{attention,ffw}_norm[_i]/scale` (or `.../Dense_0/{kernel,bias}` for
adaptive RMSNorm), `final_norm[_i]`. Expert i > 0 uses the suffix `_i`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from openpi.models import lora
from openpi.models import variants as _variants
from openpi.models.params_tree import init_normal
from openpi.models.params_tree import lecun_normal

# Sizes live in the framework-neutral `variants` module (the PyTorch model imports them without jax).
PALIGEMMA_VOCAB_SIZE = _variants.PALIGEMMA_VOCAB_SIZE
BIG_NEG = _variants.BIG_NEG
Variant = _variants.Variant
Config = _variants.GemmaConfig
get_config = _variants.gemma_config


def _sfx(i: int) -> str:
    return "" if i == 0 else f"_{i}"


# ----------------------------------------------------------------------------------------------------------- init


def init_params(key, configs: list[Config], *, vocab_size: int, adarms: list[bool]) -> dict:
    """Fresh params in upstream's layout (fp32)."""
    c0 = configs[0]
    for c in configs[1:]:
        if (c.depth, c.num_heads, c.num_kv_heads, c.head_dim) != (c0.depth, c0.num_heads, c0.num_kv_heads, c0.head_dim):
            raise ValueError("all experts must share depth, num_heads, num_kv_heads and head_dim")
    keys = iter(jax.random.split(key, 64))
    L, N, K, H = c0.depth, c0.num_heads, c0.num_kv_heads, c0.head_dim
    attn, layers, out = {}, {}, {}
    out["embedder"] = {"input_embedding": init_normal(next(keys), (vocab_size, c0.width), 1.0)}
    for i, c in enumerate(configs):
        s, D, F = _sfx(i), c.width, c.mlp_dim
        attn[f"q_einsum{s}"] = {"w": lecun_normal(next(keys), (L, N, D, H), D)}
        attn[f"kv_einsum{s}"] = {"w": lecun_normal(next(keys), (L, 2, K, D, H), D)}
        attn[f"attn_vec_einsum{s}"] = {"w": lecun_normal(next(keys), (L, N, H, D), N * H)}
        la = c.lora_configs.get("attn")
        if la:
            for name, a_shape, b_shape in (
                (f"q_einsum{s}", (L, N, D, la.rank), (L, N, la.rank, H)),
                (f"kv_einsum{s}", (L, 2, K, D, la.rank), (L, 2, K, la.rank, H)),
                (f"attn_vec_einsum{s}", (L, N, H, la.rank), (L, N, la.rank, D)),
            ):
                attn[name]["lora_a"] = init_normal(next(keys), a_shape, la.init_std)
                attn[name]["lora_b"] = init_normal(next(keys), b_shape, la.init_std)
        mlp = {
            "gating_einsum": lecun_normal(next(keys), (L, 2, D, F), D),
            "linear": lecun_normal(next(keys), (L, F, D), F),
        }
        lf = c.lora_configs.get("ffn")
        if lf:
            mlp["gating_einsum_lora_a"] = init_normal(next(keys), (L, 2, D, lf.rank), lf.init_std)
            mlp["gating_einsum_lora_b"] = init_normal(next(keys), (L, 2, lf.rank, F), lf.init_std)
            mlp["linear_lora_a"] = init_normal(next(keys), (L, F, lf.rank), lf.init_std)
            mlp["linear_lora_b"] = init_normal(next(keys), (L, lf.rank, D), lf.init_std)
        layers[f"mlp{s}"] = mlp
        for norm in ("pre_attention_norm", "pre_ffw_norm"):
            layers[f"{norm}{s}"] = _init_norm(adarms[i], D, (L,))
        out[f"final_norm{s}"] = _init_norm(adarms[i], D, ())
    layers["attn"] = attn
    out["layers"] = layers
    return out


def _init_norm(adaptive: bool, width: int, lead: tuple) -> dict:
    if adaptive:  # zero-initialised modulation: starts as a plain RMSNorm with unit gate... (scale=shift=gate=0)
        return {"Dense_0": {"kernel": jnp.zeros((*lead, width, 3 * width)), "bias": jnp.zeros((*lead, 3 * width))}}
    return {"scale": jnp.zeros((*lead, width))}


# -------------------------------------------------------------------------------------------------------- forward


def embed(params: dict, tokens, dtype=jnp.float32):
    table = params["embedder"]["input_embedding"]
    x = jnp.take(jnp.asarray(table), tokens, axis=0, mode="clip").astype(dtype)  # clamps like table[tok]
    return x * jnp.sqrt(jnp.asarray(table.shape[-1], dtype=dtype)).astype(dtype)


def rms_norm(x, norm_params: dict, cond=None):
    """Returns (normed, gate). Adaptive when the params hold `Dense_0` (then `cond` [B,C] or [B,T,C] is required)."""
    dtype = x.dtype
    xf = x.astype(jnp.float32)
    normed = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + 1e-6)
    if "Dense_0" not in norm_params:
        return (normed * (1 + norm_params["scale"].astype(jnp.float32))).astype(dtype), None
    if cond is None:
        raise ValueError("adaptive RMSNorm (pi0.5 action expert) needs adarms_cond")
    d = norm_params["Dense_0"]
    mod = jnp.dot(cond, d["kernel"].astype(cond.dtype)) + d["bias"].astype(cond.dtype)
    if mod.ndim == 2:
        mod = mod[:, None, :]
    scale, shift, gate = jnp.split(mod.astype(jnp.float32), 3, axis=-1)
    return (normed * (1 + scale) + shift).astype(dtype), gate.astype(dtype)


def apply_rope(x, positions, max_wavelength: float = 10_000.0):
    """Split-halves rotary embedding of x [B,T,N,H] at integer positions [B,T], computed in fp32."""
    h = x.shape[-1]
    freq_exponents = 2.0 * jnp.arange(h // 2, dtype=jnp.float32) / h
    timescale = max_wavelength**freq_exponents
    radians = positions[..., None].astype(jnp.float32) / timescale[None, None, :]
    radians = radians[..., None, :]
    sin, cos = jnp.sin(radians), jnp.cos(radians)
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def _proj(eqn, x, p: dict, cfg: lora.LoRAConfig | None, dtype):
    w = p["w"].astype(dtype)
    if cfg is not None and "lora_a" in p:
        return lora.lora_einsum(eqn, x, w, p["lora_a"].astype(dtype), p["lora_b"].astype(dtype), cfg.scaling)
    return jnp.einsum(eqn, x, w)


def _ffw(x, p: dict, cfg: lora.LoRAConfig | None, dtype):
    g = p["gating_einsum"].astype(dtype)
    lin = p["linear"].astype(dtype)
    if cfg is not None and "gating_einsum_lora_a" in p:
        gates = lora.lora_einsum(
            "BTD,CDF->CBTF",
            x,
            g,
            p["gating_einsum_lora_a"].astype(dtype),
            p["gating_einsum_lora_b"].astype(dtype),
            cfg.scaling,
        )
    else:
        gates = jnp.einsum("BTD,CDF->CBTF", x, g)
    hidden = jax.nn.gelu(gates[0], approximate=True) * gates[1]
    if cfg is not None and "linear_lora_a" in p:
        return lora.lora_einsum(
            "BTF,FD->BTD", hidden, lin, p["linear_lora_a"].astype(dtype), p["linear_lora_b"].astype(dtype), cfg.scaling
        )
    return jnp.einsum("BTF,FD->BTD", hidden, lin)


def _gated_residual(x, y, gate):
    return x + y if gate is None else x + y * gate


def _layer(configs, xs, layer_params, positions, mask, adarms_cond, kv_cache, dtype):
    """One transformer block over all experts with inputs (None = expert absent in this pass)."""
    attn_p = layer_params["attn"]
    qs, ks, vs, gates = [], [], [], []
    for i, x in enumerate(xs):
        if x is None:
            gates.append(None)
            continue
        s = _sfx(i)
        normed, gate = rms_norm(x, layer_params[f"pre_attention_norm{s}"], adarms_cond[i])
        gates.append(gate)
        la = configs[i].lora_configs.get("attn")
        qs.append(_proj("BTD,NDH->BTNH", normed, attn_p[f"q_einsum{s}"], la, dtype))
        kv = _proj("BSD,CKDH->CBSKH", normed, attn_p[f"kv_einsum{s}"], la, dtype)
        ks.append(kv[0])
        vs.append(kv[1])
    q, k, v = (jnp.concatenate(t, axis=1) for t in (qs, ks, vs))
    q = apply_rope(q, positions)
    k = apply_rope(k, positions)
    q = q * jnp.asarray(q.shape[-1] ** -0.5, dtype=q.dtype)
    new_cache = (k, v)
    if kv_cache is not None:
        k = jnp.concatenate([kv_cache[0], k], axis=1)
        v = jnp.concatenate([kv_cache[1], v], axis=1)
    b, t, n, h = q.shape
    kh = k.shape[2]
    qg = q.reshape(b, t, kh, n // kh, h)
    logits = jnp.einsum("BTKGH,BSKH->BKGTS", qg, k, preferred_element_type=jnp.float32)
    if mask.shape != (b, t, k.shape[1]):
        raise ValueError(f"attention mask has shape {mask.shape}, expected {(b, t, k.shape[1])}")
    logits = jnp.where(mask[:, None, None, :, :], logits, BIG_NEG)
    probs = jax.nn.softmax(logits, axis=-1).astype(dtype)
    enc = jnp.einsum("BKGTS,BSKH->BTKGH", probs, v).reshape(b, t, n, h)

    outs, start = [], 0
    for i, x in enumerate(xs):
        if x is None:
            outs.append(None)
            continue
        s, end = _sfx(i), start + x.shape[1]
        la = configs[i].lora_configs.get("attn")
        y = _proj("BTNH,NHD->BTD", enc[:, start:end], attn_p[f"attn_vec_einsum{s}"], la, dtype)
        start = end
        x = _gated_residual(x, y, gates[i])
        normed, gate = rms_norm(x, layer_params[f"pre_ffw_norm{s}"], adarms_cond[i])
        y = _ffw(normed, layer_params[f"mlp{s}"], configs[i].lora_configs.get("ffn"), dtype)
        outs.append(_gated_residual(x, y, gate))
    return outs, new_cache


def forward(
    params: dict,
    configs: list[Config],
    embedded: list,
    positions,
    mask,
    adarms_cond: list | None = None,
    *,
    kv_cache=None,
    dtype=jnp.float32,
    remat: bool = False,
):
    """Run the experts given in `embedded` (None = absent) through the shared-attention transformer.

    Returns ([out_i after its final norm, or None], kv_cache) where kv_cache = (K, V), each [L, B, T, K, H], holds this
    pass's post-RoPE keys/values (not concatenated with the incoming cache).
    """
    if adarms_cond is None:
        adarms_cond = [None] * len(configs)
    xs = [None if x is None else x.astype(dtype) for x in embedded]
    layers = params["layers"]

    def body(carry, scanned):
        lp, cache_l = scanned
        outs, new_cache = _layer(configs, carry, lp, positions, mask, adarms_cond, cache_l, dtype)
        return outs, new_cache

    if remat:
        body = jax.checkpoint(body, policy=jax.checkpoint_policies.nothing_saveable)
    xs_out, (k_all, v_all) = jax.lax.scan(body, xs, (layers, kv_cache))
    outs = []
    for i, x in enumerate(xs_out):
        if x is None:
            outs.append(None)
            continue
        normed, _ = rms_norm(x, params[f"final_norm{_sfx(i)}"], adarms_cond[i])
        outs.append(normed)
    return outs, (k_all, v_all)
