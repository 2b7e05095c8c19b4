"""Learning-rate schedules and optimizers (upstream defaults). JAX: `.create()` -> optax; PyTorch trainers read the fields."""

from __future__ import annotations

import dataclasses

import optax


@dataclasses.dataclass(frozen=True)
class CosineDecaySchedule:
    warmup_steps: int = 1_000
    peak_lr: float = 2.5e-5
    decay_steps: int = 30_000
    decay_lr: float = 2.5e-6

    def create(self) -> optax.Schedule:
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

    def create(self) -> optax.Schedule:
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
        return optax.sgd(lr, momentum=self.momentum, nesterov=self.nesterov)


LRScheduleConfig = CosineDecaySchedule | RsqrtDecaySchedule
OptimizerConfig = AdamW | SGD


def create_optimizer(optimizer: OptimizerConfig, lr_schedule: LRScheduleConfig, weight_decay_mask=None):
    return optimizer.create(lr_schedule.create(), weight_decay_mask=weight_decay_mask)
