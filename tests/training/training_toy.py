"""A tiny stand-in model/config for exercising the trainers without the real pi0 model (fast on CPU)."""

import dataclasses
import pathlib

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np

from openpi.training import optimizer as _optimizer
from openpi.training import weight_loaders

IN_DIM, H, A = 6, 4, 3


class ToyModel(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.body = nnx.Linear(IN_DIM, 16, rngs=rngs)
        self.head = nnx.Linear(16, H * A, rngs=rngs)
        self.lora_head = nnx.Linear(16, H * A, rngs=rngs)

    def compute_loss(self, rng, obs, actions, *, train=False):
        noise = 0.01 * jax.random.normal(rng, obs["x"].shape)
        h = jnp.tanh(self.body(obs["x"] + noise))
        pred = (self.head(h) + 0.1 * self.lora_head(h)).reshape(-1, H, A)
        return jnp.mean(jnp.square(pred - actions), axis=-1)


@dataclasses.dataclass(frozen=True)
class ToyModelConfig:
    def create(self, rng):
        return ToyModel(nnx.Rngs(rng))


def ToySchedule(peak_lr: float = 3e-2, warmup_steps: int = 2) -> _optimizer.CosineDecaySchedule:
    """The project's schedule: warm up for 2 steps, then a slow cosine toward 0."""
    return _optimizer.CosineDecaySchedule(warmup_steps=warmup_steps, peak_lr=peak_lr, decay_steps=1000, decay_lr=0.0)


@dataclasses.dataclass(frozen=True)
class ToyTrainConfig:
    checkpoint_base_dir: str
    name: str = "toy"
    exp_name: str = "exp"
    project_name: str = "openpi"
    model: ToyModelConfig = ToyModelConfig()
    weight_loader: object = weight_loaders.NoOpWeightLoader()
    lr_schedule: _optimizer.CosineDecaySchedule = ToySchedule()
    optimizer: _optimizer.AdamW = _optimizer.AdamW()
    ema_decay: float | None = 0.9
    freeze_filter: object = nnx.Nothing
    seed: int = 0
    batch_size: int = 8
    num_train_steps: int = 12
    log_interval: int = 1
    save_interval: int = 6
    keep_period: int | None = None
    overwrite: bool = False
    resume: bool = False
    wandb_enabled: bool = False
    fsdp_devices: int = 1
    data: object = None
    assets_dirs: str = "assets"

    @property
    def checkpoint_dir(self) -> pathlib.Path:
        return pathlib.Path(self.checkpoint_base_dir) / self.name / self.exp_name

    def get_freeze_filter(self):
        return self.freeze_filter


W_TRUE = np.random.default_rng(123).normal(size=(IN_DIM, H * A)).astype(np.float32) / 3


def toy_batch(step: int, batch_size: int = 8):
    rng = np.random.default_rng(1000 + step)
    x = rng.normal(size=(batch_size, IN_DIM)).astype(np.float32)
    return {"x": x}, np.tanh(x @ W_TRUE).reshape(batch_size, H, A).astype(np.float32)


def toy_data_factory(batch_size: int = 8, process_slice: slice | None = None):
    def factory(start_step):
        step = start_step
        while True:
            obs, act = toy_batch(step, batch_size)
            if process_slice is not None:
                obs, act = {"x": obs["x"][process_slice]}, act[process_slice]
            yield obs, act
            step += 1

    return factory
