"""LoRA on the last two weight axes (upstream openpi semantics: out = x W + scale * (x A) B)."""

from __future__ import annotations

import jax.numpy as jnp

from openpi.models import variants as _variants

LoRAConfig = _variants.LoRAConfig  # framework-neutral (openpi.models.variants)


def lora_einsum(eqn: str, x, w, a=None, b=None, scaling: float = 1.0):
    """`einsum(eqn, x, w)` plus the LoRA path when `a`/`b` are given.

    The weight's last two axes (..., I, O) are factored as A (..., I, r) and B (..., r, O); the output subscripts keep
    every leading weight axis, so e.g. "BTD,NDH->BTNH" gives A-eqn "BTD,NDr->BTNr" and B-eqn "BTNr,NrH->BTNH".
    """
    out = jnp.einsum(eqn, x, w)
    if a is None:
        return out
    lhs, out_spec = eqn.split("->")
    x_spec, w_spec = lhs.split(",")
    i_ax, o_ax = w_spec[-2], w_spec[-1]
    lead = w_spec[:-2]
    r = "r"
    assert r not in eqn
    mid_spec = "".join(c for c in out_spec if c != o_ax) + r
    # keep every leading weight axis (e.g. N for the attention output projection) in the intermediate
    for c in lead:
        if c not in mid_spec:
            mid_spec = c + mid_spec
    del i_ax
    xa = jnp.einsum(f"{x_spec},{lead}{w_spec[-2]}{r}->{mid_spec}", x, a)
    xab = jnp.einsum(f"{mid_spec},{lead}{r}{o_ax}->{out_spec}", xa, b)
    return out + xab * scaling
