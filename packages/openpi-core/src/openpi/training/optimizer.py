"""Learning-rate schedules and optimizers (upstream defaults). JAX: `.create()` -> optax; PyTorch trainers read the fields."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # optax (hence jax) is imported by `create()` only: PyTorch training reads `value()`
    import optax


@dataclasses.dataclass(frozen=True)
class CosineDecaySchedule:
    warmup_steps: int = 1_000
    peak_lr: float = 2.5e-5
    decay_steps: int = 30_000
    decay_lr: float = 2.5e-6

    def value(self, step: int) -> float:
        """The learning rate at `step` in plain Python (optax's warmup_cosine_decay_schedule formula)."""
        init = self.peak_lr / (self.warmup_steps + 1)
        if step < self.warmup_steps:
            return init + (self.peak_lr - init) * step / self.warmup_steps
        frac = min(max(step - self.warmup_steps, 0) / max(self.decay_steps - self.warmup_steps, 1), 1.0)
        return self.decay_lr + (self.peak_lr - self.decay_lr) * 0.5 * (1 + math.cos(math.pi * frac))

    def create(self) -> optax.Schedule:
        import optax

        return optax.warmup_cosine_decay_schedule(
            init_value=self.peak_lr / (self.warmup_steps + 1),
            peak_value=self.peak_lr,
            warmup_steps=self.warmup_steps,
            decay_steps=self.decay_steps,
            end_value=self.decay_lr,
        )


@dataclasses.dataclass(frozen=True)
class RsqrtDecaySchedule:
    warmup_steps: int = 1_000
    peak_lr: float = 5e-5
    timescale: float = 10_000

    def value(self, step: int) -> float:
        """The learning rate at `step` in plain Python (the formula of `create()`)."""
        if step < self.warmup_steps:
            init = self.peak_lr / (self.warmup_steps + 1)
            return init + (self.peak_lr - init) * step / self.warmup_steps
        return self.peak_lr / (1 + (step - self.warmup_steps) / self.timescale) ** 0.5

    def create(self) -> optax.Schedule:
        import optax

        return optax.join_schedules(
            [
                optax.linear_schedule(
                    init_value=self.peak_lr / (self.warmup_steps + 1),
                    end_value=self.peak_lr,
                    transition_steps=self.warmup_steps,
                ),
                lambda step: self.peak_lr / (1 + step / self.timescale) ** 0.5,
            ],
            [self.warmup_steps],
        )


@dataclasses.dataclass(frozen=True)
class AdamW:
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 1e-10  # upstream: exactly 0 caused OOMs
    clip_gradient_norm: float = 1.0

    def create(self, lr: optax.ScalarOrSchedule, weight_decay_mask=None) -> optax.GradientTransformation:
        import optax

        tx = optax.adamw(
            lr, b1=self.b1, b2=self.b2, eps=self.eps, weight_decay=self.weight_decay, mask=weight_decay_mask
        )
        return optax.chain(optax.clip_by_global_norm(self.clip_gradient_norm), tx)


@dataclasses.dataclass(frozen=True)
class SGD:
    lr: float = 5e-5
    momentum: float = 0.9
    nesterov: bool = False

    def create(self, lr: optax.ScalarOrSchedule, weight_decay_mask=None) -> optax.GradientTransformation:
        del weight_decay_mask
        import optax

        return optax.sgd(lr, momentum=self.momentum, nesterov=self.nesterov)


LRScheduleConfig = CosineDecaySchedule | RsqrtDecaySchedule
OptimizerConfig = AdamW | SGD


def create_optimizer(optimizer: OptimizerConfig, lr_schedule: LRScheduleConfig, weight_decay_mask=None):
    return optimizer.create(lr_schedule.create(), weight_decay_mask=weight_decay_mask)


def check_known(optimizer) -> None:
    """Raise when `optimizer` is not one of the configs the trainers implement (never silently replaced)."""
    known = (AdamW, SGD)
    if not isinstance(optimizer, known):
        raise TypeError(
            f"optimizer config {type(optimizer).__module__}.{type(optimizer).__qualname__} is not supported: use one "
            f"of {', '.join(f'openpi.training.optimizer.{k.__name__}' for k in known)} (TrainConfig.optimizer)"
        )
