"""pi0 / pi0.5: PaliGemma (SigLIP + Gemma 2B) prefix and a Gemma-300M action expert trained with flow matching.

Convention (upstream): t=1 is noise, t=0 is data; x_t = t*noise + (1-t)*actions, target u = noise - actions.
Sampling integrates dx/dt = v with Euler steps from t=1 (dt = -1/num_steps) over a KV cache of the prefix.
`prepare_prefix` / `velocity` expose the two halves of sampling for guided samplers (real-time chunking).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp

from openpi.models import gemma as _gemma
from openpi.models import model as _model
from openpi.models import siglip as _siglip
from openpi.models.params_tree import ParamTree
from openpi.models.params_tree import lecun_normal
from openpi.models.pi0_config import Pi0Config

_model.register_jax_pytree()  # Observation is a plain dataclass; the JAX model needs it as a pytree


def make_attn_mask(input_mask, mask_ar):
    """Token i attends to j iff cumsum(ar)[j] <= cumsum(ar)[i] and both are valid (big_vision rule)."""
    mask_ar = jnp.broadcast_to(mask_ar, input_mask.shape)
    cumsum = jnp.cumsum(mask_ar, axis=1)
    attn = cumsum[:, None, :] <= cumsum[:, :, None]
    valid = input_mask[:, None, :] * input_mask[:, :, None]
    return jnp.logical_and(attn, valid)


def posemb_sincos(pos, embedding_dim: int, min_period: float, max_period: float):
    """Sine-cosine embedding of scalar positions `pos` [...] -> [..., embedding_dim]."""
    if embedding_dim % 2:
        raise ValueError(f"embedding_dim ({embedding_dim}) must be even")
    fraction = jnp.linspace(0.0, 1.0, embedding_dim // 2)
    period = min_period * (max_period / min_period) ** fraction
    sinusoid_input = jnp.einsum("...,j->...j", pos, 1.0 / period * 2 * jnp.pi, precision=jax.lax.Precision.HIGHEST)
    return jnp.concatenate([jnp.sin(sinusoid_input), jnp.cos(sinusoid_input)], axis=-1)


def _linear(p: dict, x):
    return jnp.dot(x, p["kernel"].astype(x.dtype)) + p["bias"].astype(x.dtype)


@dataclasses.dataclass
class PrefixState:
    """What the denoising loop needs from the prefix pass (a pytree)."""

    kv_cache: Any
    prefix_mask: Any


jax.tree_util.register_dataclass(PrefixState, data_fields=["kv_cache", "prefix_mask"], meta_fields=[])


class Pi0(nnx.Module):
    def __init__(self, config: Pi0Config, rngs: nnx.Rngs):
        self.config = config
        self.action_dim = config.action_dim
        self.action_horizon = config.action_horizon
        self.max_token_len = config.max_token_len
        self.pi05 = config.pi05
        self.dtype = jnp.dtype(config.dtype)
        pg, ae = _gemma.get_config(config.paligemma_variant), _gemma.get_config(config.action_expert_variant)
        self.llm_configs = (pg, ae)
        self.vision_config = _siglip.get_config(config.vision_variant)
        key = rngs.params()
        k_llm, k_img, k_heads = jax.random.split(key, 3)
        llm = _gemma.init_params(k_llm, [pg, ae], vocab_size=config.paligemma_vocab_size, adarms=[False, config.pi05])
        img = _siglip.init_params(k_img, self.vision_config, num_classes=pg.width, image_size=config.image_resolution)
        self.PaliGemma = ParamTree({"llm": llm, "img": img})
        kh = iter(jax.random.split(k_heads, 8))
        A, W = config.action_dim, ae.width

        def lin(i, o):
            return ParamTree({"kernel": lecun_normal(next(kh), (i, o), i), "bias": jnp.zeros((o,))})

        self.action_in_proj = lin(A, W)
        if config.pi05:
            self.time_mlp_in = lin(W, W)
            self.time_mlp_out = lin(W, W)
        else:
            self.state_proj = lin(A, W)
            self.action_time_mlp_in = lin(2 * W, W)
            self.action_time_mlp_out = lin(W, W)
        self.action_out_proj = lin(W, A)

    # ------------------------------------------------------------------------------------------------ embeddings
    def preprocess(self, rng, observation: _model.Observation, *, train: bool) -> _model.Observation:
        """Resize / augment the config's camera slots (`image_keys`) to `image_resolution`."""
        return _model.preprocess_observation(
            rng,
            observation,
            train=train,
            image_keys=self.config.image_keys,
            image_resolution=self.config.image_resolution,
        )

    def _llm(self) -> dict:
        return self.PaliGemma.llm.values()

    def embed_image(self, image):
        return _siglip.forward(self.PaliGemma.img.values(), image, dtype=self.dtype)

    def embed_prefix(self, obs: _model.Observation):
        tokens, masks, ar = [], [], []
        for key in self.config.image_keys:
            img_tokens = self.embed_image(obs.images[key])
            tokens.append(img_tokens)
            masks.append(jnp.broadcast_to(obs.image_masks[key][:, None], img_tokens.shape[:2]))
            ar += [False] * img_tokens.shape[1]
        if obs.tokenized_prompt is not None:
            txt = _gemma.embed(self._llm(), obs.tokenized_prompt, dtype=self.dtype)
            tokens.append(txt)
            masks.append(obs.tokenized_prompt_mask)
            ar += [False] * txt.shape[1]
        return jnp.concatenate(tokens, axis=1), jnp.concatenate(masks, axis=1), jnp.asarray(ar)

    def embed_suffix(self, obs: _model.Observation, noisy_actions, timestep):
        """timestep [B] (one time per example) or [B,H] (per-token time, used by RTC)."""
        W = self.llm_configs[1].width
        tokens, masks, ar = [], [], []
        adarms_cond = None
        if not self.pi05:
            state_token = _linear(self.state_proj.values(), obs.state.astype(self.dtype))[:, None, :]
            tokens.append(state_token)
            masks.append(jnp.ones((obs.state.shape[0], 1), dtype=jnp.bool_))
            ar += [True]
        action_tokens = _linear(self.action_in_proj.values(), noisy_actions.astype(self.dtype))
        time_emb = posemb_sincos(timestep, W, min_period=4e-3, max_period=4.0).astype(self.dtype)
        if self.pi05:
            t = jax.nn.swish(_linear(self.time_mlp_in.values(), time_emb))
            adarms_cond = jax.nn.swish(_linear(self.time_mlp_out.values(), t))
            tokens_a = action_tokens
        else:
            if time_emb.ndim == 2:
                time_emb = jnp.broadcast_to(time_emb[:, None, :], action_tokens.shape)
            x = jnp.concatenate([action_tokens, time_emb], axis=-1)
            x = jax.nn.swish(_linear(self.action_time_mlp_in.values(), x))
            tokens_a = _linear(self.action_time_mlp_out.values(), x)
        tokens.append(tokens_a)
        masks.append(jnp.ones(tokens_a.shape[:2], dtype=jnp.bool_))
        ar += [True] + [False] * (self.action_horizon - 1)
        return jnp.concatenate(tokens, axis=1), jnp.concatenate(masks, axis=1), jnp.asarray(ar), adarms_cond

    # ---------------------------------------------------------------------------------------------------- training
    def _sample_rtc_delay(self, rng, batch: int):
        D = self.config.rtc_max_delay
        logits = jnp.arange(D - 1, -1, -1, dtype=jnp.float32)  # p(d) ∝ exp(D-1-d)
        return jax.random.categorical(rng, logits, shape=(batch,))

    def compute_loss(
        self, rng, observation: _model.Observation, actions, *, train: bool = False, noise=None, time=None
    ):
        """Per-token flow-matching loss [B, H] (mean over action dims, zero-padded dims included)."""
        preprocess_rng, noise_rng, time_rng = jax.random.split(rng, 3)
        observation = self.preprocess(preprocess_rng, observation, train=train)
        batch_shape = actions.shape[:-2]
        if noise is None:
            noise = jax.random.normal(noise_rng, actions.shape)
        if time is None:
            time = jax.random.beta(time_rng, 1.5, 1, batch_shape) * 0.999 + 0.001
        time_tok = jnp.broadcast_to(time[..., None], actions.shape[:-1])
        weights = jnp.ones(actions.shape[:-1], jnp.float32)
        if self.config.rtc_max_delay > 0:
            # Training-time RTC: the first d actions are given clean (time 0) and excluded from the loss.
            d = self._sample_rtc_delay(jax.random.fold_in(time_rng, 1), actions.shape[0])
            prefix = jnp.arange(self.action_horizon)[None, :] < d[:, None]
            time_tok = jnp.where(prefix, 0.0, time_tok)
            h = self.action_horizon
            weights = jnp.where(prefix, 0.0, h / (h - d[:, None]).astype(jnp.float32))
        t3 = time_tok[..., None]
        x_t = t3 * noise + (1 - t3) * actions
        u_t = noise - actions
        per_token_time = self.config.rtc_max_delay > 0
        v_t = self._forward_train(observation, x_t, time_tok if per_token_time else time)
        loss = jnp.mean(jnp.square(v_t - u_t), axis=-1)
        return loss * weights if per_token_time else loss

    def _forward_train(self, observation, x_t, time):
        prefix_tokens, prefix_mask, prefix_ar = self.embed_prefix(observation)
        suffix_tokens, suffix_mask, suffix_ar, adarms_cond = self.embed_suffix(observation, x_t, time)
        input_mask = jnp.concatenate([prefix_mask, suffix_mask], axis=1)
        ar_mask = jnp.concatenate([prefix_ar, suffix_ar], axis=0)
        attn_mask = make_attn_mask(input_mask, ar_mask)
        positions = jnp.cumsum(input_mask, axis=1) - 1
        (_, suffix_out), _ = _gemma.forward(
            self._llm(),
            list(self.llm_configs),
            [prefix_tokens, suffix_tokens],
            positions,
            attn_mask,
            [None, adarms_cond],
            dtype=self.dtype,
            remat=True,
        )
        return _linear(self.action_out_proj.values(), suffix_out[:, -self.action_horizon :]).astype(jnp.float32)

    # --------------------------------------------------------------------------------------------------- inference
    def prepare_prefix(self, observation: _model.Observation) -> PrefixState:
        """Run the prefix once; the result is reused by every `velocity` call."""
        prefix_tokens, prefix_mask, prefix_ar = self.embed_prefix(observation)
        attn_mask = make_attn_mask(prefix_mask, prefix_ar)
        positions = jnp.cumsum(prefix_mask, axis=1) - 1
        _, kv_cache = _gemma.forward(
            self._llm(), list(self.llm_configs), [prefix_tokens, None], positions, attn_mask, dtype=self.dtype
        )
        return PrefixState(kv_cache=kv_cache, prefix_mask=prefix_mask)

    def velocity(self, prefix: PrefixState, observation: _model.Observation, x_t, time):
        """v(x_t, t) [B,H,A]; `time` is [B] or per-token [B,H]. Pure and differentiable in x_t."""
        suffix_tokens, suffix_mask, suffix_ar, adarms_cond = self.embed_suffix(observation, x_t, time)
        b, s = suffix_tokens.shape[:2]
        p = prefix.prefix_mask.shape[1]
        prefix_attn = jnp.broadcast_to(prefix.prefix_mask[:, None, :], (b, s, p))
        suffix_attn = make_attn_mask(suffix_mask, suffix_ar)
        attn_mask = jnp.concatenate([prefix_attn, suffix_attn], axis=-1)
        positions = jnp.sum(prefix.prefix_mask, axis=-1)[:, None] + jnp.cumsum(suffix_mask, axis=-1) - 1
        (_, suffix_out), _ = _gemma.forward(
            self._llm(),
            list(self.llm_configs),
            [None, suffix_tokens],
            positions,
            attn_mask,
            [None, adarms_cond],
            kv_cache=prefix.kv_cache,
            dtype=self.dtype,
        )
        return _linear(self.action_out_proj.values(), suffix_out[:, -self.action_horizon :]).astype(jnp.float32)

    def sample_actions(self, rng, observation: _model.Observation, *, num_steps: int = 10, noise=None):
        observation = self.preprocess(None, observation, train=False)
        batch = observation.state.shape[0]
        dt = -1.0 / num_steps
        if noise is None:
            noise = jax.random.normal(rng, (batch, self.action_horizon, self.action_dim))
        prefix = self.prepare_prefix(observation)

        def step(carry):
            x_t, t = carry
            v_t = self.velocity(prefix, observation, x_t, jnp.broadcast_to(t, (batch,)))
            return x_t + dt * v_t, t + dt

        def cond(carry):
            _, t = carry
            return t >= -dt / 2

        x_0, _ = jax.lax.while_loop(cond, step, (noise.astype(jnp.float32), jnp.asarray(1.0, jnp.float32)))
        return x_0
