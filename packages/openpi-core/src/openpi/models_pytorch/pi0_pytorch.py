"""PI0Pytorch: pi0 / pi0.5 as standard torch modules with upstream openpi's PyTorch parameter names.

    PI0Pytorch
    ├── paligemma_with_expert: PaliGemmaWithExpert
    │   ├── paligemma.model.vision_tower.vision_model   SigLIP (embeddings, encoder.layers[i], post_layernorm)
    │   ├── paligemma.model.multi_modal_projector.linear
    │   ├── paligemma.model.language_model              Gemma (embed_tokens, layers[i], norm)
    │   └── gemma_expert.model                          action-expert Gemma (layers[i], norm; adaRMS in pi0.5)
    ├── action_in_proj, action_out_proj
    └── time_mlp_in, time_mlp_out (pi0.5) | state_proj, action_time_mlp_in, action_time_mlp_out (pi0)

The two Gemmas share one attention per layer (prefix tokens through the VLM weights, suffix tokens through the
expert's). Numerically it matches openpi.models.pi0 (the JAX model) to ~1e-5 in float32. Nothing here imports jax;
a JAX-identical initialisation is the JAX model's params through `convert.jax_to_torch` (tests/models_torch/jax_init.py).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
import torch.nn.functional as F
import torch.utils.checkpoint

from openpi.models import model as _model
from openpi.models import variants
from openpi.models.pi0_config import Pi0Config
from openpi.models_pytorch import modules as m


def fp32_param(name: str) -> bool:
    """Parameters upstream keeps in float32 in a bfloat16 model (patch/position embeddings, Gemma norms, and the
    top-level projections, which sit outside `paligemma_with_expert`); also the optional SigLIP conv stem, which the
    JAX model runs in float32 like the patch embedding."""
    if not name.startswith("paligemma_with_expert."):
        return True
    keep = ("patch_embedding", "position_embedding", "embeddings.stem.", "input_layernorm", "post_attention_layernorm")
    keep += ("model.norm",)
    return any(s in name for s in keep)


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


def _lin(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return layer(x.to(layer.weight.dtype))


class PaliGemmaModel(nn.Module):
    def __init__(self, config: Pi0Config, vlm: variants.GemmaConfig):
        super().__init__()
        vision = variants.siglip_config(config.vision_variant)
        self.vision_tower = m.SiglipVisionTower(vision, config.image_resolution)
        self.multi_modal_projector = m.MultiModalProjector(vision.width, vlm.width)
        self.language_model = m.GemmaModel(vlm, vocab_size=config.paligemma_vocab_size)


class PaliGemma(nn.Module):
    def __init__(self, config: Pi0Config, vlm: variants.GemmaConfig):
        super().__init__()
        self.model = PaliGemmaModel(config, vlm)


class GemmaExpert(nn.Module):
    def __init__(self, expert: variants.GemmaConfig, adarms: bool):
        super().__init__()
        self.model = m.GemmaModel(expert, vocab_size=None, cond_dim=expert.width if adarms else None)


class PaliGemmaWithExpert(nn.Module):
    def __init__(self, config: Pi0Config):
        super().__init__()
        vlm = variants.gemma_config(config.paligemma_variant)
        expert = variants.gemma_config(config.action_expert_variant)
        shared = ("depth", "num_heads", "num_kv_heads", "head_dim")
        if any(getattr(vlm, f) != getattr(expert, f) for f in shared):
            raise ValueError(f"the two Gemma variants must share {shared}: {vlm} vs {expert}")
        self.paligemma = PaliGemma(config, vlm)
        self.gemma_expert = GemmaExpert(expert, adarms=config.pi05)
        self.gradient_checkpointing = False

    def experts(self) -> tuple[m.GemmaModel, m.GemmaModel]:
        return self.paligemma.model.language_model, self.gemma_expert.model

    def embed_image(self, image: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[B,3,H,W] (or [B,H,W,3]) float in [-1, 1] -> [B, patches, VLM width]."""
        if image.shape[-1] == 3 and image.shape[1] != 3:
            image = image.permute(0, 3, 1, 2)
        x = self.paligemma.model.vision_tower.vision_model(image, dtype)
        return _lin(self.paligemma.model.multi_modal_projector.linear, x).to(dtype)

    def embed_language_tokens(self, tokens: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        table = self.paligemma.model.language_model.embed_tokens.weight
        x = F.embedding(tokens.long(), table).to(dtype)
        return x * torch.tensor(math.sqrt(table.shape[-1]), dtype=dtype, device=x.device)

    def _layer(self, i, xs, positions, bias, conds, cache):
        """Layer i over both experts with one shared attention -> (new xs, this layer's (K, V) [B, K, T, H])."""
        qs, ks, vs, gates, layers = [], [], [], [], []
        for e, x in enumerate(xs):
            layer = self.experts()[e].layers[i]
            layers.append(layer)
            if x is None:
                gates.append(None)
                continue
            h, gate = layer.input_layernorm(x, conds[e])
            gates.append(gate)
            at = layer.self_attn
            b, t = x.shape[:2]
            qs.append(at.q_proj(h).view(b, t, at.num_heads, at.head_dim))
            ks.append(at.k_proj(h).view(b, t, at.num_kv_heads, at.head_dim))
            vs.append(at.v_proj(h).view(b, t, at.num_kv_heads, at.head_dim))
        q = m.apply_rope(torch.cat(qs, 1), positions).transpose(1, 2)
        k = m.apply_rope(torch.cat(ks, 1), positions).transpose(1, 2)
        v = torch.cat(vs, 1).transpose(1, 2)
        new_kv = (k, v)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        enc = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=q.shape[-1] ** -0.5, enable_gqa=True)
        enc = enc.transpose(1, 2).flatten(2)
        outs, start = [], 0
        for x, gate, layer, cond in zip(xs, gates, layers, conds, strict=True):
            if x is None:
                outs.append(None)
                continue
            y = layer.self_attn.o_proj(enc[:, start : start + x.shape[1]])
            start += x.shape[1]
            x = x + y if gate is None else x + y * gate
            h, gate = layer.post_attention_layernorm(x, cond)
            y = layer.mlp(h)
            outs.append(x + y if gate is None else x + y * gate)
        return outs, new_kv

    def forward(self, embeds, positions, mask, adarms_cond=(None, None), kv_cache=None, dtype=torch.float32):
        """embeds [prefix | None, suffix | None]; mask [B, T, S] bool (S = cached + T); kv_cache: list of (K, V)
        per layer. Returns ([prefix_out, suffix_out] after the final norms, [(K, V) per layer of these tokens])."""
        xs = [None if x is None else x.to(dtype) for x in embeds]
        bias = torch.where(mask[:, None], 0.0, m.BIG_NEG).to(dtype)
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        caches = []
        for i in range(len(self.experts()[0].layers)):
            cache = None if kv_cache is None else kv_cache[i]
            args = (i, xs, positions, bias, list(adarms_cond), cache)
            if recompute:
                xs, kv = torch.utils.checkpoint.checkpoint(self._layer, *args, use_reentrant=False)
            else:
                xs, kv = self._layer(*args)
            caches.append(kv)
        outs = [None if x is None else model.norm(x, c)[0] for x, model, c in zip(xs, self.experts(), adarms_cond)]
        return outs, caches


def fake_observation(config: Pi0Config, batch_size: int = 1, device="cpu") -> _model.Observation:
    """An all-ones observation shaped like `config.inputs_spec` (torch; for warm-up and compilation)."""
    ones = dict(device=device)
    h, w = config.image_resolution
    return _model.Observation(
        images={k: torch.ones(batch_size, 3, h, w, **ones) for k in config.image_keys},
        image_masks={k: torch.ones(batch_size, dtype=torch.bool, **ones) for k in config.image_keys},
        state=torch.ones(batch_size, config.action_dim, **ones),
        tokenized_prompt=torch.ones(batch_size, config.max_token_len, dtype=torch.long, **ones),
        tokenized_prompt_mask=torch.ones(batch_size, config.max_token_len, dtype=torch.bool, **ones),
    )


@dataclasses.dataclass
class PrefixState:
    kv_cache: list
    prefix_mask: torch.Tensor


class PI0Pytorch(nn.Module):
    def __init__(self, config: Pi0Config):
        super().__init__()
        self.config = config
        self.pi05 = config.pi05
        self.action_horizon = config.action_horizon
        self.action_dim = config.action_dim
        self.compute_dtype = torch.bfloat16 if config.dtype == "bfloat16" else torch.float32
        width = variants.gemma_config(config.action_expert_variant).width
        self.paligemma_with_expert = PaliGemmaWithExpert(config)
        self.action_in_proj = nn.Linear(config.action_dim, width)
        self.action_out_proj = nn.Linear(width, config.action_dim)
        if self.pi05:
            self.time_mlp_in = nn.Linear(width, width)
            self.time_mlp_out = nn.Linear(width, width)
        else:
            self.state_proj = nn.Linear(config.action_dim, width)
            self.action_time_mlp_in = nn.Linear(2 * width, width)
            self.action_time_mlp_out = nn.Linear(width, width)
        m.init_weights(self)  # torch-native init (a no-op cost on the meta device)
        # The two functions compile.py compiles (tensors in, tensors out); eager until compile_model() is called.
        self._velocity_impl = self._velocity
        self._prefix_impl = self._prefix
        self.compile_mode: str | None = None

    def gradient_checkpointing_enable(self, enabled: bool = True) -> None:
        """Recompute each Gemma layer in the backward pass instead of storing its activations (training only)."""
        self.paligemma_with_expert.gradient_checkpointing = enabled

    def to_precision(self, precision: str) -> PI0Pytorch:
        """bfloat16 as upstream (see `fp32_param`), or float32 everywhere."""
        if precision not in ("bfloat16", "float32"):
            raise ValueError(f"precision {precision!r}: use bfloat16 or float32")
        for name, p in self.named_parameters():
            keep = precision == "float32" or fp32_param(name)
            p.data = p.data.float() if keep else p.data.to(torch.bfloat16)
        self.compute_dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        return self

    # ----------------------------------------------------------------------------------------------- pieces
    def embed_image(self, image):
        return self.paligemma_with_expert.embed_image(image, self.compute_dtype)

    def embed_prefix(self, obs: _model.Observation):
        tokens, masks, ar = [], [], []
        for key in self.config.image_keys:
            t = self.embed_image(obs.images[key])
            tokens.append(t)
            masks.append(obs.image_masks[key][:, None].expand(t.shape[0], t.shape[1]))
            ar += [False] * t.shape[1]
        if obs.tokenized_prompt is not None:
            txt = self.paligemma_with_expert.embed_language_tokens(obs.tokenized_prompt, self.compute_dtype)
            tokens.append(txt)
            masks.append(obs.tokenized_prompt_mask.bool())
            ar += [False] * txt.shape[1]
        dev = tokens[0].device
        return torch.cat(tokens, 1), torch.cat(masks, 1).bool(), torch.tensor(ar, device=dev)

    def embed_suffix(self, obs: _model.Observation, noisy_actions, timestep):
        width = self.action_in_proj.out_features
        dt = self.compute_dtype
        tokens, masks, ar, cond = [], [], [], None
        b = noisy_actions.shape[0]
        if not self.pi05:
            tokens.append(_lin(self.state_proj, obs.state).to(dt)[:, None, :])
            masks.append(torch.ones(b, 1, dtype=torch.bool, device=noisy_actions.device))
            ar += [True]
        act = _lin(self.action_in_proj, noisy_actions)
        temb = posemb_sincos(timestep, width, 4e-3, 4.0)
        if self.pi05:
            cond = F.silu(_lin(self.time_mlp_out, F.silu(_lin(self.time_mlp_in, temb)))).to(dt)
            tok = act.to(dt)
        else:
            if temb.dim() == 2:
                temb = temb[:, None, :].expand(-1, act.shape[1], -1)
            x = F.silu(_lin(self.action_time_mlp_in, torch.cat([act, temb.to(act.dtype)], -1)))
            tok = _lin(self.action_time_mlp_out, x).to(dt)
        tokens.append(tok)
        masks.append(torch.ones(tok.shape[:2], dtype=torch.bool, device=tok.device))
        ar += [True] + [False] * (self.action_horizon - 1)
        return torch.cat(tokens, 1), torch.cat(masks, 1), torch.tensor(ar, device=tok.device), cond

    def _action_out(self, out: torch.Tensor) -> torch.Tensor:
        return _lin(self.action_out_proj, out[:, -self.action_horizon :]).float()

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
        attn = make_attn_mask(input_mask, torch.cat([prefix_ar, suffix_ar], 0))
        positions = torch.cumsum(input_mask.long(), 1) - 1
        (_, out), _ = self.paligemma_with_expert(
            [prefix_tokens, suffix_tokens], positions, attn, [None, cond], dtype=self.compute_dtype
        )
        loss = F.mse_loss(u_t.float(), self._action_out(out), reduction="none")
        return loss if weights is None else loss * weights[..., None]

    def compute_loss(self, observation, actions, noise=None, time=None, delay=None) -> torch.Tensor:
        """Per-token loss [B, H] (mean over action dims); ``delay`` as in ``forward``."""
        return self.forward(observation, actions, noise, time, delay).mean(-1)

    # -------------------------------------------------------------------------------------------- inference
    def _prefix(self, images, image_masks, tokenized_prompt, tokenized_prompt_mask):
        """The prefix pass (images + prompt through the VLM) -> (KV cache per layer, prefix mask)."""
        obs = _model.Observation(
            images=images,
            image_masks=image_masks,
            state=None,
            tokenized_prompt=tokenized_prompt,
            tokenized_prompt_mask=tokenized_prompt_mask,
        )
        prefix_tokens, prefix_mask, prefix_ar = self.embed_prefix(obs)
        attn = make_attn_mask(prefix_mask, prefix_ar)
        positions = torch.cumsum(prefix_mask.long(), 1) - 1
        _, cache = self.paligemma_with_expert([prefix_tokens, None], positions, attn, dtype=self.compute_dtype)
        return cache, prefix_mask

    def prepare_prefix(self, observation: _model.Observation) -> PrefixState:
        # Canonical dtypes (float images, bool masks, int64 tokens) so a compiled prefix pass sees one signature
        # whatever the caller's tokenizer / wire dtypes were (no recompilation between warm-up and requests).
        images = {k: observation.images[k].float().contiguous() for k in self.config.image_keys}
        masks = {k: observation.image_masks[k].bool() for k in self.config.image_keys}
        tokens, token_mask = observation.tokenized_prompt, observation.tokenized_prompt_mask
        if tokens is not None:
            tokens, token_mask = tokens.long().contiguous(), token_mask.bool().contiguous()
        cache, prefix_mask = self._prefix_impl(images, masks, tokens, token_mask)
        return PrefixState(kv_cache=cache, prefix_mask=prefix_mask)

    def _velocity(self, kv_cache, prefix_mask, state, x_t, time) -> torch.Tensor:
        """One denoising step's velocity (the part `compile.py` compiles): tensors in, tensor out."""
        obs = _model.Observation(images={}, image_masks={}, state=state)
        suffix_tokens, suffix_mask, suffix_ar, cond = self.embed_suffix(obs, x_t, time)
        b, s = suffix_tokens.shape[:2]
        p = prefix_mask.shape[1]
        attn = torch.cat([prefix_mask[:, None, :].expand(b, s, p), make_attn_mask(suffix_mask, suffix_ar)], -1)
        positions = prefix_mask.long().sum(-1)[:, None] + torch.cumsum(suffix_mask.long(), 1) - 1
        (_, out), _ = self.paligemma_with_expert(
            [None, suffix_tokens], positions, attn, [None, cond], kv_cache=kv_cache, dtype=self.compute_dtype
        )
        return self._action_out(out)

    def velocity(self, prefix: PrefixState, observation, x_t, time) -> torch.Tensor:
        """v(x_t, t) given the prefix's KV cache (the compiled step after `compile.compile_model`)."""
        state = observation.state.float()
        return self._velocity_impl(prefix.kv_cache, prefix.prefix_mask, state, x_t.float(), time.float())

    def velocity_eager(self, prefix: PrefixState, observation, x_t, time) -> torch.Tensor:
        """`velocity` without compilation (RTC's vjp differentiates through it)."""
        return self._velocity(prefix.kv_cache, prefix.prefix_mask, observation.state, x_t, time)

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
