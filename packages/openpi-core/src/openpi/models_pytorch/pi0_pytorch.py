"""PI0Pytorch: pi0 / pi0.5 in plain torch, numerically matching openpi.models.pi0 (same param tree and math)."""

from __future__ import annotations

import dataclasses
import math

from flax import nnx
import jax
import torch
from torch import nn
import torch.nn.functional as F

from openpi.models import gemma as _gemma
from openpi.models import model as _model
from openpi.models.pi0_config import Pi0Config
from openpi.models_pytorch import gemma_pytorch as gemma_t
from openpi.models_pytorch import siglip_pytorch as siglip_t
from openpi.models_pytorch.tree import TensorTree
from openpi.models_pytorch.tree import shapes_to_zeros

# Params kept in float32 when the model runs in bfloat16 (as upstream: patch/position embeddings and norms).
FP32_PARAM_PATTERNS = ("embedding.kernel", "embedding.bias", "pos_embedding", "norm", "LayerNorm")


def make_attn_mask(input_mask: torch.Tensor, mask_ar: torch.Tensor) -> torch.Tensor:
    mask_ar = mask_ar.expand_as(input_mask) if mask_ar.dim() == 1 else mask_ar
    cumsum = torch.cumsum(mask_ar.long(), dim=1)
    attn = cumsum[:, None, :] <= cumsum[:, :, None]
    valid = input_mask[:, None, :] & input_mask[:, :, None]
    return attn & valid


def posemb_sincos(pos: torch.Tensor, dim: int, min_period: float, max_period: float) -> torch.Tensor:
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64, device=pos.device)
    period = min_period * (max_period / min_period) ** fraction
    x = pos.double()[..., None] * (1.0 / period * 2 * math.pi)
    return torch.cat([torch.sin(x), torch.cos(x)], dim=-1).float()


def _linear(p: dict, x):
    return x @ p["kernel"].to(x.dtype) + p["bias"].to(x.dtype)


@dataclasses.dataclass
class PrefixState:
    kv_cache: tuple
    prefix_mask: torch.Tensor


class PI0Pytorch(nn.Module):
    def __init__(self, config: Pi0Config):
        super().__init__()
        self.config = config
        self.pi05 = config.pi05
        self.action_horizon = config.action_horizon
        self.action_dim = config.action_dim
        self.llm_configs = (
            _gemma.get_config(config.paligemma_variant),
            _gemma.get_config(config.action_expert_variant),
        )
        self.compute_dtype = torch.bfloat16 if config.dtype == "bfloat16" else torch.float32
        self.gradient_checkpointing = False
        # Same tree (names, shapes) as the JAX model; values come from a checkpoint or a JAX-style init.
        abstract = nnx.state(nnx.eval_shape(lambda: config.create(jax.random.key(0)))).to_pure_dict()
        for key, sub in shapes_to_zeros(abstract).items():
            self.add_module(key, TensorTree(sub))

    def gradient_checkpointing_enable(self, enabled: bool = True) -> None:
        """Recompute each Gemma layer in the backward pass instead of storing its activations (training only)."""
        self.gradient_checkpointing = enabled

    @classmethod
    def from_jax_init(cls, config: Pi0Config, seed: int = 0) -> PI0Pytorch:
        """A freshly initialised model (same init as the JAX model with key(seed))."""
        from openpi.models_pytorch.convert import jax_params_to_torch_state_dict

        params = nnx.state(config.create(jax.random.key(seed))).to_pure_dict()
        model = cls(config)
        model.load_state_dict(jax_params_to_torch_state_dict(params, config))
        return model

    def to_precision(self, precision: str) -> PI0Pytorch:
        """bfloat16: every weight bf16 except patch/position embeddings and norms (fp32); float32: all fp32."""
        if precision not in ("bfloat16", "float32"):
            raise ValueError(f"precision {precision!r}: use bfloat16 or float32")
        for name, p in self.named_parameters():
            keep = precision == "float32" or any(s in name for s in FP32_PARAM_PATTERNS)
            p.data = p.data.float() if keep else p.data.to(torch.bfloat16)
        self.compute_dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        return self

    # ----------------------------------------------------------------------------------------------- pieces
    def _llm(self) -> dict:
        return self.PaliGemma.llm.values()

    def embed_image(self, image):
        return siglip_t.forward(self.PaliGemma.img.values(), image, dtype=self.compute_dtype)

    def embed_prefix(self, obs: _model.Observation):
        tokens, masks, ar = [], [], []
        for key in self.config.image_keys:
            t = self.embed_image(obs.images[key])
            tokens.append(t)
            masks.append(obs.image_masks[key][:, None].expand(t.shape[0], t.shape[1]))
            ar += [False] * t.shape[1]
        if obs.tokenized_prompt is not None:
            txt = gemma_t.embed(self._llm(), obs.tokenized_prompt, self.compute_dtype)
            tokens.append(txt)
            masks.append(obs.tokenized_prompt_mask.bool())
            ar += [False] * txt.shape[1]
        dev = tokens[0].device
        return torch.cat(tokens, 1), torch.cat(masks, 1).bool(), torch.tensor(ar, device=dev)

    def embed_suffix(self, obs: _model.Observation, noisy_actions, timestep):
        W = self.llm_configs[1].width
        dt = self.compute_dtype
        tokens, masks, ar, cond = [], [], [], None
        b = noisy_actions.shape[0]
        if not self.pi05:
            tokens.append(_linear(self.state_proj.values(), obs.state.to(dt))[:, None, :])
            masks.append(torch.ones(b, 1, dtype=torch.bool, device=noisy_actions.device))
            ar += [True]
        act = _linear(self.action_in_proj.values(), noisy_actions.to(dt))
        temb = posemb_sincos(timestep, W, 4e-3, 4.0).to(dt)
        if self.pi05:
            t = F.silu(_linear(self.time_mlp_in.values(), temb))
            cond = F.silu(_linear(self.time_mlp_out.values(), t))
            tok = act
        else:
            if temb.dim() == 2:
                temb = temb[:, None, :].expand_as(act)
            x = F.silu(_linear(self.action_time_mlp_in.values(), torch.cat([act, temb], -1)))
            tok = _linear(self.action_time_mlp_out.values(), x)
        tokens.append(tok)
        masks.append(torch.ones(tok.shape[:2], dtype=torch.bool, device=tok.device))
        ar += [True] + [False] * (self.action_horizon - 1)
        return torch.cat(tokens, 1), torch.cat(masks, 1), torch.tensor(ar, device=tok.device), cond

    # --------------------------------------------------------------------------------------------- training
    def sample_rtc_delay(self, batch: int, *, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Training-time RTC delays d in {0..D-1} with p(d) ∝ exp(D-1-d) (D = config.rtc_max_delay), int64 [B]."""
        D = int(self.config.rtc_max_delay)
        if D <= 0:
            return torch.zeros(batch, dtype=torch.long, device=device)
        probs = torch.softmax(torch.arange(D - 1, -1, -1, dtype=torch.float64), 0)
        d = torch.multinomial(probs, batch, replacement=True, generator=generator)
        return d.to(device)

    def forward(self, observation: _model.Observation, actions, noise=None, time=None, delay=None) -> torch.Tensor:
        """Per-element flow-matching loss [B, H, A] (mean it for the training objective).

        Training-time RTC (``config.rtc_max_delay = D > 0``, or an explicit ``delay`` [B] int tensor): the first
        d actions of each example are given clean (x_t = actions, per-token time 0); their loss is zero and the
        remaining H - d positions are scaled by H / (H - d), so the mean over H is the mean over the postfix
        (the same objective as the JAX ``Pi0.compute_loss``). ``delay`` of all zeros is plain flow matching.
        """
        b, h = actions.shape[0], self.action_horizon
        if noise is None:
            noise = torch.randn_like(actions.float())
        if time is None:
            time = torch.distributions.Beta(1.5, 1.0).sample((b,)).to(actions.device) * 0.999 + 0.001
        if delay is None and self.config.rtc_max_delay > 0:
            delay = self.sample_rtc_delay(b, device=actions.device)
        weights = None
        if delay is not None:
            delay = torch.as_tensor(delay, device=actions.device).long().reshape(b)
            if bool((delay < 0).any()) or bool((delay >= h).any()):
                raise ValueError(f"delay must be in [0, action_horizon={h}), got {delay.tolist()}")
            prefix = torch.arange(h, device=actions.device)[None, :] < delay[:, None]
            time_tok = torch.where(prefix, torch.zeros((), dtype=time.dtype, device=time.device), time[:, None])
            weights = torch.where(prefix, 0.0, h / (h - delay[:, None]).float())
            t_emb = time_tok
        else:
            time_tok = time[:, None].expand(b, h)
            t_emb = time
        t3 = time_tok[..., None]
        x_t = t3 * noise + (1 - t3) * actions
        u_t = noise - actions
        prefix_tokens, prefix_mask, prefix_ar = self.embed_prefix(observation)
        suffix_tokens, suffix_mask, suffix_ar, cond = self.embed_suffix(observation, x_t, t_emb)
        input_mask = torch.cat([prefix_mask, suffix_mask], 1)
        ar = torch.cat([prefix_ar, suffix_ar], 0)
        attn = make_attn_mask(input_mask, ar)
        positions = torch.cumsum(input_mask.long(), 1) - 1
        (_, out), _ = gemma_t.forward(
            self._llm(),
            list(self.llm_configs),
            [prefix_tokens, suffix_tokens],
            positions,
            attn,
            [None, cond],
            dtype=self.compute_dtype,
            checkpoint=self.gradient_checkpointing and self.training,
        )
        v_t = _linear(self.action_out_proj.values(), out[:, -self.action_horizon :]).float()
        loss = F.mse_loss(u_t.float(), v_t, reduction="none")
        return loss if weights is None else loss * weights[..., None]

    def compute_loss(self, observation, actions, noise=None, time=None, delay=None) -> torch.Tensor:
        """Per-token loss [B, H] (mean over action dims); ``delay`` as in ``forward``."""
        return self.forward(observation, actions, noise, time, delay).mean(-1)

    # -------------------------------------------------------------------------------------------- inference
    def prepare_prefix(self, observation: _model.Observation) -> PrefixState:
        prefix_tokens, prefix_mask, prefix_ar = self.embed_prefix(observation)
        attn = make_attn_mask(prefix_mask, prefix_ar)
        positions = torch.cumsum(prefix_mask.long(), 1) - 1
        _, cache = gemma_t.forward(
            self._llm(), list(self.llm_configs), [prefix_tokens, None], positions, attn, dtype=self.compute_dtype
        )
        return PrefixState(kv_cache=cache, prefix_mask=prefix_mask)

    def velocity(self, prefix: PrefixState, observation, x_t, time) -> torch.Tensor:
        suffix_tokens, suffix_mask, suffix_ar, cond = self.embed_suffix(observation, x_t, time)
        b, s = suffix_tokens.shape[:2]
        p = prefix.prefix_mask.shape[1]
        attn = torch.cat([prefix.prefix_mask[:, None, :].expand(b, s, p), make_attn_mask(suffix_mask, suffix_ar)], -1)
        positions = prefix.prefix_mask.long().sum(-1)[:, None] + torch.cumsum(suffix_mask.long(), 1) - 1
        (_, out), _ = gemma_t.forward(
            self._llm(),
            list(self.llm_configs),
            [None, suffix_tokens],
            positions,
            attn,
            [None, cond],
            kv_cache=prefix.kv_cache,
            dtype=self.compute_dtype,
        )
        return _linear(self.action_out_proj.values(), out[:, -self.action_horizon :]).float()

    @torch.no_grad()
    def sample_actions(self, device, observation: _model.Observation, noise=None, num_steps: int = 10):
        b = observation.state.shape[0]
        if noise is None:
            noise = torch.randn(b, self.action_horizon, self.action_dim, device=device)
        prefix = self.prepare_prefix(observation)
        dt = -1.0 / num_steps
        x_t, t = noise.float(), 1.0
        while t >= -dt / 2:
            v_t = self.velocity(prefix, observation, x_t, torch.full((b,), t, device=x_t.device))
            x_t = x_t + dt * v_t
            t += dt
        return x_t
