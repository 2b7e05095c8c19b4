"""Tiny pi0.5 (golden checkpoint): load time (orbax restore vs safetensors) and sample_actions latency
(JAX jit vs PyTorch eager), measured side by side in one run. Prints a markdown table."""

from __future__ import annotations

import pathlib
import tempfile
import time

import jax
import numpy as np
import torch

from openpi.models import model as _model
from openpi.models import pi0_config
from openpi.models.pi0_config import TINY
from openpi.models_pytorch import loading
from openpi.models_pytorch.convert import jax_params_to_torch_state_dict
from openpi.models_pytorch.pi0_pytorch import PI0Pytorch

GOLDEN = pathlib.Path(__file__).resolve().parents[2] / "shared" / "golden"
CFG = pi0_config.Pi0Config(pi05=True, action_horizon=10, **{**TINY, "max_token_len": 64})


def timeit(fn, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return np.median(times) * 1000


def main():
    params_dir = GOLDEN / "pi05_tiny" / "params"
    with tempfile.TemporaryDirectory() as tmp:
        tm = PI0Pytorch(CFG)
        tm.load_state_dict(jax_params_to_torch_state_dict(_model.restore_params(params_dir), CFG))
        loading.save_pytorch_model(tm, tmp, precision="float32")
        jax_load = timeit(lambda: CFG.load(_model.restore_params(params_dir)), 5)
        torch_load = timeit(lambda: loading.load_pytorch_model(CFG, tmp), 5)
    jm = CFG.load(_model.restore_params(params_dir))
    obs = CFG.fake_obs(1)
    from flax import nnx

    graphdef, state = nnx.split(jm)
    sample = jax.jit(lambda s, o: nnx.merge(graphdef, s).sample_actions(jax.random.key(0), o))
    np.asarray(sample(state, obs))
    jax_ms = timeit(lambda: np.asarray(sample(state, obs)), 20)
    tobs = jax.tree.map(lambda x: torch.as_tensor(np.asarray(x)), obs)
    tm.sample_actions("cpu", tobs)
    torch_ms = timeit(lambda: tm.sample_actions("cpu", tobs), 20)
    print("| tiny pi0.5 (golden checkpoint), CPU | JAX | PyTorch | ratio torch/JAX |")
    print("|---|---|---|---|")
    print(
        f"| load (orbax restore vs safetensors), ms | {jax_load:.0f} | {torch_load:.0f} | {torch_load / jax_load:.2f} |"
    )
    print(
        f"| sample_actions, 10 steps, ms (JAX jit, torch eager) | {jax_ms:.1f} | {torch_ms:.1f} | {torch_ms / jax_ms:.2f} |"
    )


if __name__ == "__main__":
    main()
