"""SigLIP ViT image encoder (big_vision layout under `PaliGemma/img`), as used by pi0 / pi0.5.

So400m/14 is width 1152, depth 27, mlp 4304, 16 heads; "tiny" (tests, golden small SigLIP) is width 32, depth 2, mlp 64,
4 heads. Patch 14, learned position embedding, no pooling, `head` Dense to the LLM width. An optional convolutional stem
(`SiglipConfig.conv_stem`, not upstream; params under `stem/conv_<i>`) runs before the patch embedding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from openpi.models import variants as _variants
from openpi.models.params_tree import init_normal
from openpi.models.params_tree import lecun_normal

# Sizes live in the framework-neutral `variants` module (the PyTorch model imports them without jax).
Config = _variants.SiglipConfig
VARIANTS = _variants.SIGLIP_VARIANTS
get_config = _variants.siglip_config


def init_params(key, cfg: Config, *, num_classes: int, image_size: tuple[int, int] = (224, 224)) -> dict:
    """`image_size` (height, width) sets the grid, hence the learned position embedding's length."""
    k = iter(jax.random.split(key, 16))
    W, L, M, N = cfg.width, cfg.depth, cfg.mlp_dim, cfg.num_heads
    hd = W // N
    n_tokens = (image_size[0] // cfg.patch) * (image_size[1] // cfg.patch)
    z = jnp.zeros
    block = {
        "LayerNorm_0": {"scale": jnp.ones((L, W)), "bias": z((L, W))},
        "LayerNorm_1": {"scale": jnp.ones((L, W)), "bias": z((L, W))},
        "MultiHeadDotProductAttention_0": {
            name: {"kernel": lecun_normal(next(k), (L, W, N, hd), W), "bias": z((L, N, hd))}
            for name in ("query", "key", "value")
        },
        "MlpBlock_0": {
            "Dense_0": {"kernel": lecun_normal(next(k), (L, W, M), W), "bias": z((L, M))},
            "Dense_1": {"kernel": lecun_normal(next(k), (L, M, W), M), "bias": z((L, W))},
        },
    }
    block["MultiHeadDotProductAttention_0"]["out"] = {
        "kernel": lecun_normal(next(k), (L, N, hd, W), W),
        "bias": z((L, W)),
    }
    params = {}
    cin = 3
    if cfg.conv_stem:
        params["stem"] = {}
        for i, cout in enumerate(cfg.conv_stem):
            kernel = lecun_normal(next(k), (3, 3, cin, cout), 9 * cin)
            params["stem"][f"conv_{i}"] = {"kernel": kernel, "bias": z((cout,))}
            cin = cout
    p = cfg.stem_patch
    return params | {
        "embedding": {"kernel": lecun_normal(next(k), (p, p, cin, W), p * p * cin), "bias": z((W,))},
        "pos_embedding": init_normal(next(k), (1, n_tokens, W), W**-0.5),
        "Transformer": {"encoderblock": block, "encoder_norm": {"scale": jnp.ones((W,)), "bias": z((W,))}},
        "head": {"kernel": z((W, num_classes)), "bias": z((num_classes,))},
    }


def layer_norm(x, p, eps=1e-6):
    xf = x.astype(jnp.float32)
    mean = jnp.mean(xf, axis=-1, keepdims=True)
    var = jnp.maximum(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) - jnp.square(mean), 0.0)
    y = (xf - mean) * jax.lax.rsqrt(var + eps)
    return (y * p["scale"].astype(jnp.float32) + p["bias"].astype(jnp.float32)).astype(x.dtype)


def _block(x, p, dtype):
    y = layer_norm(x, p["LayerNorm_0"])
    a = p["MultiHeadDotProductAttention_0"]
    q, k, v = (
        jnp.einsum("btd,dnh->btnh", y, a[n]["kernel"].astype(dtype)) + a[n]["bias"].astype(dtype)
        for n in ("query", "key", "value")
    )
    q = q / jnp.sqrt(jnp.asarray(q.shape[-1], dtype)).astype(dtype)
    logits = jnp.einsum("btnh,bsnh->bnts", q, k, preferred_element_type=jnp.float32)
    probs = jax.nn.softmax(logits, axis=-1).astype(dtype)
    o = jnp.einsum("bnts,bsnh->btnh", probs, v)
    o = jnp.einsum("btnh,nhd->btd", o, a["out"]["kernel"].astype(dtype)) + a["out"]["bias"].astype(dtype)
    x = x + o
    y = layer_norm(x, p["LayerNorm_1"])
    m = p["MlpBlock_0"]
    h = jax.nn.gelu(
        jnp.dot(y, m["Dense_0"]["kernel"].astype(dtype)) + m["Dense_0"]["bias"].astype(dtype), approximate=True
    )
    return x + jnp.dot(h, m["Dense_1"]["kernel"].astype(dtype)) + m["Dense_1"]["bias"].astype(dtype)


def forward(params: dict, image, *, dtype=jnp.float32, return_intermediates: bool = False):
    """image [B,H,W,3] float in [-1,1] -> tokens [B, (H/patch)*(W/patch), num_classes] (patch 14 upstream)."""
    e = params["embedding"]
    patch = e["kernel"].shape[0]
    x = image.astype(jnp.float32)
    for i in range(len(params.get("stem", {}))):  # optional conv stem (SiglipConfig.conv_stem)
        conv = params["stem"][f"conv_{i}"]
        x = jax.lax.conv_general_dilated(
            x, conv["kernel"].astype(jnp.float32), (2, 2), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        x = jax.nn.gelu(x + conv["bias"].astype(jnp.float32), approximate=False)
    x = jax.lax.conv_general_dilated(
        x,
        e["kernel"].astype(jnp.float32),
        (patch, patch),
        "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    ) + e["bias"].astype(jnp.float32)
    stem = x
    b, h, w, c = x.shape
    x = x.reshape(b, h * w, c) + params["pos_embedding"].astype(jnp.float32)
    with_posemb = x
    x = x.astype(dtype)

    def body(carry, lp):
        return _block(carry, lp, dtype), None

    x, _ = jax.lax.scan(body, x, params["Transformer"]["encoderblock"])
    x = layer_norm(x, params["Transformer"]["encoder_norm"])
    encoded = x
    hd = params["head"]
    out = jnp.dot(x, hd["kernel"].astype(dtype)) + hd["bias"].astype(dtype)
    if return_intermediates:
        return out, {"stem": stem, "with_posemb": with_posemb, "encoded": encoded}
    return out
