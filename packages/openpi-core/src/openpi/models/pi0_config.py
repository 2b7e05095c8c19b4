"""Pi0Config: the pi0 / pi0.5 model configuration (upstream fields and defaults, plus tiny-test knobs)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from openpi.models import model as _model
from openpi.models import variants as _variants

if TYPE_CHECKING:
    from openpi.models.pi0 import Pi0


# The tiny variant every test and the offline demo use: dummy Gemma (both experts), tiny SigLIP, the golden
# checkpoint's 1024-token vocabulary; same code path as the 3B models. `Pi0Config(pi05=True, **TINY)`.
TINY = dict(
    paligemma_variant="dummy",
    action_expert_variant="dummy",
    vision_variant="tiny",
    dtype="float32",
    paligemma_vocab_size=1024,
    max_token_len=96,
)


@dataclasses.dataclass(frozen=True)
class Pi0Config(_model.BaseModelConfig):
    dtype: str = "bfloat16"
    paligemma_variant: str = "gemma_2b"
    action_expert_variant: str = "gemma_300m"

    action_dim: int = 32
    action_horizon: int = 50
    max_token_len: int = None  # type: ignore[assignment]  # 200 for pi0.5, 48 for pi0
    pi05: bool = False
    discrete_state_input: bool = None  # type: ignore[assignment]  # defaults to pi05
    # torch.compile mode of the PyTorch model when served (openpi.models_pytorch.compile): None = eager. Upstream
    # defaults to "max-autotune"; here eager, because a first CPU compile takes minutes (docs/pytorch.md).
    pytorch_compile_mode: str | None = None

    # Our additions (upstream hard-codes these): the golden tiny models use a small SigLIP and a 1024-token vocab.
    vision_variant: str = "So400m/14"
    paligemma_vocab_size: int = _variants.PALIGEMMA_VOCAB_SIZE
    # Training-time RTC (action prefix conditioning): 0 = off; D > 0 samples a delay d in [0, D) per example.
    rtc_max_delay: int = 0
    # The camera slots the model embeds (a subset of model.IMAGE_KEYS, in this order) and the resolution they are
    # resized (with padding) to. Upstream embeds all three slots at 224x224 and masks absent cameras; a robot with
    # one camera can list only that slot, so the masked slots cost nothing. Each side must be a multiple of the
    # SigLIP patch (14); the position embedding is sized to the grid.
    image_keys: tuple[str, ...] = _model.IMAGE_KEYS
    image_resolution: tuple[int, int] = _model.IMAGE_RESOLUTION

    def __post_init__(self):
        if self.max_token_len is None:
            object.__setattr__(self, "max_token_len", 200 if self.pi05 else 48)
        if self.discrete_state_input is None:
            object.__setattr__(self, "discrete_state_input", self.pi05)
        _variants.gemma_config(self.paligemma_variant)
        _variants.gemma_config(self.action_expert_variant)
        object.__setattr__(self, "image_keys", tuple(self.image_keys))
        object.__setattr__(self, "image_resolution", tuple(int(x) for x in self.image_resolution))
        unknown = [k for k in self.image_keys if k not in _model.IMAGE_KEYS]
        if unknown or not self.image_keys or len(set(self.image_keys)) != len(self.image_keys):
            raise ValueError(
                f"image_keys={self.image_keys}: list one or more distinct camera slots of {_model.IMAGE_KEYS}"
            )
        patch = _variants.siglip_config(self.vision_variant).patch
        if len(self.image_resolution) != 2 or any(x <= 0 or x % patch for x in self.image_resolution):
            raise ValueError(
                f"image_resolution={self.image_resolution}: give (height, width), each a positive multiple of the "
                f"SigLIP patch size {patch} (e.g. (112, 112) or (224, 224))"
            )
        if self.rtc_max_delay < 0 or self.rtc_max_delay >= self.action_horizon:
            raise ValueError(f"rtc_max_delay={self.rtc_max_delay} must be in [0, action_horizon={self.action_horizon})")

    @property
    def model_type(self) -> _model.ModelType:
        return _model.ModelType.PI05 if self.pi05 else _model.ModelType.PI0

    def create(self, rng) -> Pi0:
        from flax import nnx

        from openpi.models.pi0 import Pi0

        return Pi0(self, rngs=nnx.Rngs(rng))

    def inputs_spec(self, *, batch_size: int = 1):
        """(Observation of `model.ShapeDtype` leaves, actions ShapeDtype): framework-neutral, no jax."""
        spec = _model.ShapeDtype
        image_spec = spec([batch_size, *self.image_resolution, 3], "float32")
        mask_spec = spec([batch_size], "bool")
        obs = _model.Observation(
            images={k: image_spec for k in self.image_keys},
            image_masks={k: mask_spec for k in self.image_keys},
            state=spec([batch_size, self.action_dim], "float32"),
            tokenized_prompt=spec([batch_size, self.max_token_len], "int32"),
            tokenized_prompt_mask=spec([batch_size, self.max_token_len], "bool"),
        )
        return obs, spec([batch_size, self.action_horizon, self.action_dim], "float32")

    def get_freeze_filter(self):
        """Freeze the non-LoRA weights of a LoRA LLM (upstream rules); LoRA weights, SigLIP and heads train."""
        from flax import nnx

        from openpi.shared.nnx_utils import PathRegex

        gemma_lora = "lora" in self.paligemma_variant
        expert_lora = "lora" in self.action_expert_variant
        filters = []
        has_lora = False
        if gemma_lora:
            filters.append(PathRegex(".*llm.*"))
            if not expert_lora:
                filters.append(nnx.Not(PathRegex(".*llm.*_1.*")))
            has_lora = True
        elif expert_lora:
            filters.append(PathRegex(".*llm.*_1.*"))
            has_lora = True
        if has_lora:
            filters.append(nnx.Not(PathRegex(".*lora.*")))
            return nnx.All(*filters)
        return nnx.Nothing
