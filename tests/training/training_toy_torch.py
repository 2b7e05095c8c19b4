"""Toy PyTorch model/config for the PyTorch trainer tests; also a torchrun entry point:

torchrun --nproc_per_node=2 training_toy_torch.py <ckpt_base> <num_steps> <resume 0|1> <out.json>
"""

import dataclasses
import json
import pathlib
import sys

import numpy as np
import torch

from openpi.training import optimizer as _optimizer

IN_DIM, H, A = 6, 4, 3
W_TRUE = np.random.default_rng(123).normal(size=(IN_DIM, H * A)).astype(np.float32) / 3


class ToyTorchModel(torch.nn.Module):
    """Flow-matching-shaped toy: predicts noise - actions from (x, x_t, t); forward returns per-element losses."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(IN_DIM + H * A + 1, 32)
        self.head = torch.nn.Linear(32, H * A)

    def forward(self, obs, actions, noise=None, time=None):
        b = actions.shape[0]
        x_t = time[:, None, None] * noise + (1 - time[:, None, None]) * actions
        inp = torch.cat([obs["x"], x_t.reshape(b, -1), time[:, None]], dim=-1)
        v = self.head(torch.tanh(self.body(inp))).reshape(b, H, A)
        return (v - (noise - actions)) ** 2


@dataclasses.dataclass(frozen=True)
class ToyTorchConfig:
    checkpoint_base_dir: str
    name: str = "toy_torch"
    exp_name: str = "exp"
    project_name: str = "openpi"
    model: object = None
    lr_schedule: _optimizer.CosineDecaySchedule = _optimizer.CosineDecaySchedule(
        warmup_steps=2, peak_lr=1e-2, decay_steps=1000, decay_lr=1e-3
    )
    optimizer: _optimizer.AdamW = _optimizer.AdamW()
    ema_decay: float | None = 0.9
    seed: int = 0
    batch_size: int = 8
    num_train_steps: int = 10
    log_interval: int = 1
    save_interval: int = 5
    keep_period: int | None = None
    overwrite: bool = False
    resume: bool = False
    wandb_enabled: bool = False
    pytorch_training_precision: str = "float32"
    data: object = None
    assets_dirs: str = "assets"

    @property
    def checkpoint_dir(self) -> pathlib.Path:
        return pathlib.Path(self.checkpoint_base_dir) / self.name / self.exp_name


def model_factory(config, dinfo, precision, grad_ckpt):
    torch.manual_seed(0)
    return ToyTorchModel()


def data_factory(start_step, rank, world):
    step = start_step
    while True:
        rng = np.random.default_rng(1000 + step)
        x = rng.normal(size=(8, IN_DIM)).astype(np.float32)
        act = np.tanh(x @ W_TRUE).reshape(8, H, A).astype(np.float32)
        per = 8 // world
        sl = slice(rank * per, (rank + 1) * per)
        yield {"x": x[sl]}, act[sl]
        step += 1


def run(base: str, steps: int, resume: bool, kill_at: int | None = None):
    from openpi.training import train_pytorch

    def data(start, rank, world):
        for i, b in enumerate(data_factory(start, rank, world)):
            if kill_at is not None and start + i == kill_at:
                import os
                import signal

                os.kill(os.getpid(), signal.SIGKILL)
            yield b

    cfg = ToyTorchConfig(checkpoint_base_dir=base, num_train_steps=steps, resume=resume)
    return train_pytorch.train(cfg, model_factory=model_factory, data_factory=data, progress=False)


if __name__ == "__main__":
    base, steps, resume, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
    kill = int(sys.argv[5]) if len(sys.argv) > 5 else None
    losses = run(base, steps, resume, kill)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        pathlib.Path(out).write_text(json.dumps({str(k): v for k, v in losses.items()}))
