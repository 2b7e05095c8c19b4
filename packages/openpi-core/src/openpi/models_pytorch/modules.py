"""Standard torch modules of pi0 / pi0.5: SigLIP, the two Gemma experts (adaRMS for pi0.5), LoRA-capable Linear.

Attribute names follow upstream openpi's PyTorch model (transformers' SigLIP / Gemma names), so `state_dict()` keys
are upstream's (`paligemma_with_expert.paligemma.model.language_model.layers.3.self_attn.q_proj.weight`, ...; see
docs/pytorch.md). Every module is built from the config alone; nothing here imports jax.

Numerics follow openpi.models (the JAX model): norms in float32, RMSNorm x_hat * (1 + w), RoPE on the two halves of
head_dim, finite mask value BIG_NEG (padding rows get a uniform softmax instead of NaN), tanh-GELU (exact GELU in the
optional SigLIP conv stem).
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from openpi.models import variants

BIG_NEG = variants.BIG_NEG


class LoRALinear(nn.Linear):
    """nn.Linear plus openpi's LoRA (out = x W^T + b + scaling * (x A) B), A/B per head group as in the JAX einsums.

    `groups` > 1 splits the output (q/k/v: one adapter per head) or, with `split_input=True`, the input (o_proj: one
    adapter per head, summed), exactly like upstream's LoRA on `q_einsum` / `attn_vec_einsum`. Parameters
    `lora_a` [groups, in/groups or in, rank] and `lora_b` [groups, rank, out/groups or out].
    """

    def __init__(self, in_features, out_features, *, bias=False, lora=None, groups=1, split_input=False):
        super().__init__(in_features, out_features, bias=bias)
        self.scaling = 0.0
        self.split_input = split_input
        if lora is not None:
            a_in = in_features // groups if split_input else in_features
            b_out = out_features if split_input else out_features // groups
            self.lora_a = nn.Parameter(torch.empty(groups, a_in, lora.rank))
            self.lora_b = nn.Parameter(torch.empty(groups, lora.rank, b_out))
            self.scaling = lora.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        if not hasattr(self, "lora_a"):
            return out
        a, b = self.lora_a.to(x.dtype), self.lora_b.to(x.dtype)
        if self.split_input:
            xa = torch.einsum("...gi,gir->...gr", x.unflatten(-1, (a.shape[0], a.shape[1])), a)
            lo = torch.einsum("...gr,gro->...o", xa, b)
        else:
            xa = torch.einsum("...i,gir->...gr", x, a)
            lo = torch.einsum("...gr,gro->...go", xa, b).flatten(-2)
        return out + lo * self.scaling


# --------------------------------------------------------------------------------------------------------- SigLIP


class SiglipEmbeddings(nn.Module):
    """Patch + learned position embedding. With `cfg.conv_stem` (not upstream) the image first goes through
    `stem`: one 3x3 stride-2 convolution (padding 1) + exact GELU per entry; the patch embedding then takes
    `cfg.stem_patch`-pixel patches of the stem's output, so the token grid stays image_resolution / cfg.patch.
    Without a stem `stem` is empty (no parameters, upstream's state dict)."""

    def __init__(self, cfg: variants.SiglipConfig, image_resolution: tuple[int, int]):
        super().__init__()
        channels = (3, *cfg.conv_stem)
        self.stem = nn.ModuleList(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1) for cin, cout in zip(channels[:-1], channels[1:])
        )
        self.patch_embedding = nn.Conv2d(channels[-1], cfg.width, cfg.stem_patch, stride=cfg.stem_patch)
        n = (image_resolution[0] // cfg.patch) * (image_resolution[1] // cfg.patch)
        self.position_embedding = nn.Embedding(n, cfg.width)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image [B,3,H,W] float -> [B, N, width] (float32: upstream keeps these two, and we the stem, in fp32)."""
        x = image
        for conv in self.stem:
            x = F.gelu(conv(x.to(conv.weight.dtype)), approximate="none")
        w = self.patch_embedding.weight
        x = F.conv2d(x.to(w.dtype), w, self.patch_embedding.bias, stride=self.patch_embedding.stride)
        return x.flatten(2).transpose(1, 2).float() + self.position_embedding.weight.float()


class SiglipAttention(nn.Module):
    def __init__(self, cfg: variants.SiglipConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.q_proj = nn.Linear(cfg.width, cfg.width)
        self.k_proj = nn.Linear(cfg.width, cfg.width)
        self.v_proj = nn.Linear(cfg.width, cfg.width)
        self.out_proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (p(x).view(b, t, self.num_heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        o = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(o.transpose(1, 2).reshape(b, t, -1))


class SiglipMLP(nn.Module):
    def __init__(self, cfg: variants.SiglipConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.width, cfg.mlp_dim)
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm computed in float32 whatever the weight dtype, result in x's dtype."""
    return F.layer_norm(x.float(), norm.normalized_shape, norm.weight.float(), norm.bias.float(), norm.eps).to(x.dtype)


class SiglipEncoderLayer(nn.Module):
    def __init__(self, cfg: variants.SiglipConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.width, eps=1e-6)
        self.self_attn = SiglipAttention(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.width, eps=1e-6)
        self.mlp = SiglipMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(layer_norm(self.layer_norm1, x))
        return x + self.mlp(layer_norm(self.layer_norm2, x))


class SiglipEncoder(nn.Module):
    def __init__(self, cfg: variants.SiglipConfig):
        super().__init__()
        self.layers = nn.ModuleList(SiglipEncoderLayer(cfg) for _ in range(cfg.depth))


class SiglipVisionModel(nn.Module):
    def __init__(self, cfg: variants.SiglipConfig, image_resolution: tuple[int, int]):
        super().__init__()
        self.embeddings = SiglipEmbeddings(cfg, image_resolution)
        self.encoder = SiglipEncoder(cfg)
        self.post_layernorm = nn.LayerNorm(cfg.width, eps=1e-6)

    def forward(self, image: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        x = self.embeddings(image).to(dtype)
        for layer in self.encoder.layers:
            x = layer(x)
        return layer_norm(self.post_layernorm, x)


class SiglipVisionTower(nn.Module):
    def __init__(self, cfg: variants.SiglipConfig, image_resolution: tuple[int, int]):
        super().__init__()
        self.vision_model = SiglipVisionModel(cfg, image_resolution)


class MultiModalProjector(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)


# ---------------------------------------------------------------------------------------------------------- Gemma


class GemmaRMSNorm(nn.Module):
    """x_hat * (1 + weight); with `cond_dim` (pi0.5 action expert) adaptive: dense(cond) -> (scale, shift, gate),
    out = x_hat * (1 + scale) + shift and the caller scales the residual branch by gate."""

    def __init__(self, dim: int, eps: float = 1e-6, cond_dim: int | None = None):
        super().__init__()
        self.eps = eps
        if cond_dim is None:
            self.weight = nn.Parameter(torch.zeros(dim))
        else:
            self.dense = nn.Linear(cond_dim, 3 * dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + self.eps)
        if not hasattr(self, "dense"):
            return (normed * (1 + self.weight.float())).to(x.dtype), None
        if cond is None:
            raise ValueError("adaptive RMSNorm (pi0.5 action expert) needs adarms_cond")
        mod = self.dense(cond.to(self.dense.weight.dtype)).float()
        if mod.dim() == 2:
            mod = mod[:, None, :]
        scale, shift, gate = mod.chunk(3, dim=-1)
        return (normed * (1 + scale) + shift).to(x.dtype), gate.to(x.dtype)


class GemmaAttention(nn.Module):
    def __init__(self, cfg: variants.GemmaConfig):
        super().__init__()
        lc = cfg.lora_configs.get("attn")
        n, k, h, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.width
        self.num_heads, self.num_kv_heads, self.head_dim = n, k, h
        self.q_proj = LoRALinear(d, n * h, lora=lc, groups=n)
        self.k_proj = LoRALinear(d, k * h, lora=lc, groups=k)
        self.v_proj = LoRALinear(d, k * h, lora=lc, groups=k)
        self.o_proj = LoRALinear(n * h, d, lora=lc, groups=n, split_input=True)


class GemmaMLP(nn.Module):
    def __init__(self, cfg: variants.GemmaConfig):
        super().__init__()
        lc = cfg.lora_configs.get("ffn")
        self.gate_proj = LoRALinear(cfg.width, cfg.mlp_dim, lora=lc)
        self.up_proj = LoRALinear(cfg.width, cfg.mlp_dim, lora=lc)
        self.down_proj = LoRALinear(cfg.mlp_dim, cfg.width, lora=lc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class GemmaDecoderLayer(nn.Module):
    def __init__(self, cfg: variants.GemmaConfig, cond_dim: int | None):
        super().__init__()
        self.self_attn = GemmaAttention(cfg)
        self.mlp = GemmaMLP(cfg)
        self.input_layernorm = GemmaRMSNorm(cfg.width, cond_dim=cond_dim)
        self.post_attention_layernorm = GemmaRMSNorm(cfg.width, cond_dim=cond_dim)


class GemmaModel(nn.Module):
    def __init__(self, cfg: variants.GemmaConfig, *, vocab_size: int | None, cond_dim: int | None = None):
        super().__init__()
        self.config = cfg
        if vocab_size is not None:
            self.embed_tokens = nn.Embedding(vocab_size, cfg.width)
        self.layers = nn.ModuleList(GemmaDecoderLayer(cfg, cond_dim) for _ in range(cfg.depth))
        self.norm = GemmaRMSNorm(cfg.width, cond_dim=cond_dim)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, max_wavelength: float = 10_000.0) -> torch.Tensor:
    """x [B, T, heads, H], positions [B, T] -> rotated x (halves of head_dim, as upstream)."""
    h = x.shape[-1]
    freq_exponents = 2.0 * torch.arange(h // 2, dtype=torch.float32, device=x.device) / h
    timescale = max_wavelength**freq_exponents
    radians = (positions[..., None].float() / timescale)[..., None, :]
    sin, cos = torch.sin(radians), torch.cos(radians)
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def init_weights(module: nn.Module) -> None:
    """Torch-native from-scratch init in the spirit of openpi's: lecun-normal kernels, zero biases, RMSNorm
    weight 0 (scale 1), adaRMS modulation 0, LayerNorm 1/0, token embeddings N(0,1), position embedding
    N(0, 1/sqrt(width)), LoRA A ~ N(0, 0.01) and B = 0 (the adapters start as identity)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            fan_in = m.weight[0].numel()
            nn.init.normal_(m.weight, std=1.0 / math.sqrt(fan_in))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, LoRALinear) and hasattr(m, "lora_a"):
                nn.init.normal_(m.lora_a, std=0.01)
                nn.init.zeros_(m.lora_b)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=1.0)
    for m in module.modules():  # after the generic pass (children are visited after their parents)
        if isinstance(m, GemmaRMSNorm):
            if hasattr(m, "dense"):
                nn.init.zeros_(m.dense.weight)
                nn.init.zeros_(m.dense.bias)
            else:
                nn.init.zeros_(m.weight)
        elif isinstance(m, SiglipEmbeddings):
            nn.init.normal_(m.position_embedding.weight, std=m.position_embedding.weight.shape[-1] ** -0.5)
