"""Real-time chunking (RTC) samplers for the JAX pi0 / pi0.5 (openpi time convention: t goes 1 -> 0).

`sample_actions_rtc` samples the next chunk while the robot still executes the previous one:
- "vjp" (inference-time RTC, Black et al. 2025): guidance toward the previous chunk's remaining actions,
  v_guided = v - w(t) * VJP(x0_hat wrt x_t)[(Y - x0_hat) * W], x0_hat = x_t - t * v, w = min(beta, 1/(t(1-t)) - 2).
- "identity": the same with the Jacobian taken as I (cheaper, no backward pass).
- "prefix" (training-time RTC): the first d actions are overwritten with the committed ones at every step and get
  per-token time 0 (use with a model trained with `rtc_max_delay > 0`).
The soft mask W is 1 for i < d, decays exponentially for d <= i < k and is 0 for i >= k (k = len(prev_chunk)).
With k == 0 (or an all-zero mask) every method equals plain `sample_actions`.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from openpi.models import model as _model
from openpi.models.rtc_common import guidance_weight
from openpi.models.rtc_common import prefix_weights  # noqa: F401  (re-exported: upstream import path)

_model.register_jax_pytree()  # Observation is a plain dataclass; the JAX model needs it as a pytree

Method = Literal["vjp", "identity", "prefix"]


def _pad_prev(prev_chunk, horizon: int):
    prev = jnp.asarray(prev_chunk, dtype=jnp.float32)
    k = prev.shape[1]
    if k > horizon:
        raise ValueError(f"prev_chunk has {k} actions, more than the action horizon {horizon}")
    return jnp.pad(prev, ((0, 0), (0, horizon - k), (0, 0))), k


def sample_actions_rtc(
    model,
    rng,
    observation: _model.Observation,
    *,
    prev_chunk,
    inference_delay: int,
    method: Method = "vjp",
    max_guidance_weight: float = 5.0,
    num_steps: int = 10,
    noise=None,
):
    """Jitted per (delay, k, method, num_steps); returns [B, H, A] in model space."""
    if method not in ("vjp", "identity", "prefix"):
        raise ValueError(f"method {method!r}: use vjp, identity or prefix")
    observation = model.preprocess(None, observation, train=False)
    b, h = observation.state.shape[0], model.action_horizon
    y, k = _pad_prev(prev_chunk, h)
    if y.shape[-1] != model.action_dim:
        raise ValueError(f"prev_chunk action dim {y.shape[-1]} != model action dim {model.action_dim} (model space)")
    if noise is None:
        noise = jax.random.normal(rng if rng is not None else jax.random.key(0), (b, h, model.action_dim))
    d = int(np.clip(inference_delay, 0, k))
    # d and k are traced: a client's delay estimate and execution horizon vary from chunk to chunk, and a recompile
    # per (d, k) pair would stall the robot for seconds.
    return _sample_jit(
        model,
        observation,
        y,
        jnp.asarray(noise, jnp.float32),
        jnp.asarray(d, jnp.int32),
        jnp.asarray(k, jnp.int32),
        method=method,
        beta=float(max_guidance_weight),
        num_steps=int(num_steps),
    )


def _soft_mask(d, k, h):
    """`prefix_weights(d, k, h, "exp")` with traced d and k."""
    i = jnp.arange(h, dtype=jnp.float32)
    start = jnp.minimum(d, k).astype(jnp.float32)
    end = k.astype(jnp.float32)
    w = jnp.clip((start - 1 - i) / (end - start + 1) + 1, 0.0, 1.0)
    w = w * jnp.expm1(w) / (math.e - 1)
    return jnp.where(i >= end, 0.0, w)


def _sample(model, observation, y, x, d, k, *, method, beta, num_steps):
    b, h = x.shape[:2]
    w_mask = _soft_mask(d, k, h)[None, :, None]
    prefix = model.prepare_prefix(observation)
    dt = -1.0 / num_steps
    committed = (jnp.arange(h) < d)[None, :]
    for step in range(num_steps):
        t = 1.0 + step * dt
        t_vec = jnp.full((b,), t, dtype=jnp.float32)
        if method == "prefix":
            x = jnp.where(committed[..., None], y, x)
            v = model.velocity(prefix, observation, x, jnp.where(committed, 0.0, t_vec[:, None]))
        elif method == "vjp":

            def denoise(x_t, t_vec=t_vec, t=t):
                v_t = model.velocity(prefix, observation, x_t, t_vec)
                return x_t - t * v_t, v_t

            x0_hat, vjp_fn, v = jax.vjp(denoise, x, has_aux=True)
            (g,) = vjp_fn((y - x0_hat) * w_mask)
            v = v - guidance_weight(t, beta) * g
        else:
            v = model.velocity(prefix, observation, x, t_vec)
            v = v - guidance_weight(t, beta) * (y - (x - t * v)) * w_mask
        x = x + dt * v
    if method == "prefix":
        x = jnp.where(committed[..., None], y, x)
    return x


def _jit():
    from flax import nnx

    return nnx.jit(_sample, static_argnames=("method", "beta", "num_steps"))


_sample_jit = _jit()
