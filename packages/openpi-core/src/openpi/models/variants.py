"""Model sizes shared by the JAX and the PyTorch model, importable without jax: the Gemma and SigLIP variants,
LoRA settings, the PaliGemma vocabulary size and the finite attention-mask value. `openpi.models.gemma`,
`openpi.models.siglip` and `openpi.models.lora` re-export these names (upstream's import paths)."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

PALIGEMMA_VOCAB_SIZE = 257_152
BIG_NEG = -2.3819763e38  # finite mask value of upstream (padding rows get a uniform softmax, not NaN)

Variant = Literal[
    "dummy", "dummy_1layer", "dummy_lora", "small", "gemma_300m", "gemma_300m_lora", "gemma_2b", "gemma_2b_lora"
]


@dataclasses.dataclass(frozen=True)
class LoRAConfig:
    rank: int
    alpha: float = 1.0
    init_std: float = 0.01
    rslora: bool = False

    @property
    def scaling(self) -> float:
        return self.alpha / math.sqrt(self.rank) if self.rslora else self.alpha / self.rank


@dataclasses.dataclass(frozen=True)
class GemmaConfig:
    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    lora_configs: dict = dataclasses.field(default_factory=dict)  # keys "attn", "ffn"


def gemma_config(variant: str) -> GemmaConfig:
    if variant == "dummy":
        return GemmaConfig(width=64, depth=4, mlp_dim=128, num_heads=8, num_kv_heads=1, head_dim=16)
    if variant == "dummy_1layer":  # one-layer dummy: the CI config of the torch.compile test (not upstream)
        return GemmaConfig(width=64, depth=1, mlp_dim=128, num_heads=8, num_kv_heads=1, head_dim=16)
    if variant == "small":  # CPU-trainable ALOHA-sim recipe (pi05_aloha_sim_small); not an upstream variant
        return GemmaConfig(width=128, depth=4, mlp_dim=512, num_heads=4, num_kv_heads=1, head_dim=32)
    if variant == "gemma_300m":
        return GemmaConfig(width=1024, depth=18, mlp_dim=4096, num_heads=8, num_kv_heads=1, head_dim=256)
    if variant == "gemma_2b":
        return GemmaConfig(width=2048, depth=18, mlp_dim=16_384, num_heads=8, num_kv_heads=1, head_dim=256)
    if variant == "gemma_2b_lora":
        lc = LoRAConfig(rank=16, alpha=16.0)
        return dataclasses.replace(gemma_config("gemma_2b"), lora_configs={"attn": lc, "ffn": lc})
    if variant == "gemma_300m_lora":
        lc = LoRAConfig(rank=32, alpha=32.0)
        return dataclasses.replace(gemma_config("gemma_300m"), lora_configs={"attn": lc, "ffn": lc})
    if variant == "dummy_lora":  # tiny LoRA for tests (not an upstream variant)
        lc = LoRAConfig(rank=4, alpha=4.0)
        return dataclasses.replace(gemma_config("dummy"), lora_configs={"attn": lc, "ffn": lc})
    raise ValueError(f"Unknown gemma variant {variant!r}; use one of {Variant.__args__}")


@dataclasses.dataclass(frozen=True)
class SiglipConfig:
    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    patch: int = 14
    # Optional convolutional stem (not in upstream SigLIP): output channels of 3x3 stride-2 convolutions (padding 1,
    # GELU) run before the patch embedding, which then embeds (patch / 2**len(conv_stem))-pixel patches of the stem's
    # feature map. The token grid stays image_resolution / patch. Early convolutions give a ViT trained from scratch
    # the translation-equivariant local features it otherwise learns slowly (Xiao et al. 2021).
    conv_stem: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "conv_stem", tuple(int(c) for c in self.conv_stem))
        if self.patch % 2 ** len(self.conv_stem):
            raise ValueError(
                f"SigLIP patch {self.patch} must be divisible by 2**len(conv_stem) = {2 ** len(self.conv_stem)} "
                f"(conv_stem={self.conv_stem}: each stem convolution halves the resolution)"
            )

    @property
    def stem_patch(self) -> int:
        """The patch embedding's kernel and stride on the stem's output (= patch without a stem)."""
        return self.patch // 2 ** len(self.conv_stem)


SIGLIP_VARIANTS = {
    "So400m/14": SiglipConfig(width=1152, depth=27, mlp_dim=4304, num_heads=16),
    "tiny": SiglipConfig(width=32, depth=2, mlp_dim=64, num_heads=4),
    # CPU-trainable ALOHA-sim recipe (pi05_aloha_sim_small): not an upstream variant.
    "small": SiglipConfig(width=96, depth=4, mlp_dim=384, num_heads=4),
    # The same with a two-layer convolutional stem and 16 px tokens (4x4 patches of the stem's 1/4-resolution map): the
    # pixel tier of the ALOHA-sim recipe, which must localize a ~4 px cube.
    "small_conv": SiglipConfig(width=96, depth=4, mlp_dim=384, num_heads=4, patch=16, conv_stem=(32, 64)),
    # A larger tower for the same task (the model-size lever of bench/RESULTS.md): 2x the width, 1.5x the depth, 2x
    # the stem's channels.
    "medium_conv": SiglipConfig(width=192, depth=6, mlp_dim=768, num_heads=6, patch=16, conv_stem=(64, 128)),
}


def siglip_config(variant: str) -> SiglipConfig:
    if variant not in SIGLIP_VARIANTS:
        raise ValueError(f"Unknown SigLIP variant {variant!r}; use one of {sorted(SIGLIP_VARIANTS)}")
    return SIGLIP_VARIANTS[variant]
