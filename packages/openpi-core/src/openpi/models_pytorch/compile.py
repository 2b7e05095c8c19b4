"""Compiled inference for PI0Pytorch: `torch.compile` of the denoising step and of the prefix pass, with inductor's
on-disk caches under `$OPENPI_DATA_HOME/torch_compile_cache` so that a second process start reuses the compiled
kernels instead of recompiling them.

    model = loading.load_pytorch_model(config, ckpt_dir, compile_mode="default")   # or compile_model(model, mode)
    make serve ... ARGS="--pytorch-compile-mode default"                            # or Pi0Config.pytorch_compile_mode

Modes are torch.compile's: "default" (CPU and GPU), "reduce-overhead" (CUDA graphs: on a GPU this removes the
per-kernel launch cost of the 10 small denoising steps), "max-autotune" (CUDA graphs + Triton autotuning; longest
compile), "max-autotune-no-cudagraphs". None / "none" / "eager" keeps eager execution. Shapes are static (batch,
prompt length, action horizon), so a policy server compiles once at warm-up. The CUDA modes are written for GPUs
but untested here (this machine has no GPU); docs/pytorch.md has the measured CPU numbers.
The RTC "vjp" guidance needs gradients through the step and runs the eager step (a compiled backward would double
the compile time); "identity" and "prefix" use the compiled step.
"""

from __future__ import annotations

import logging
import os
import pathlib

import torch

logger = logging.getLogger("openpi.models_pytorch.compile")

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
EAGER = (None, "none", "eager", "")


def cache_dir() -> pathlib.Path:
    """`$OPENPI_DATA_HOME/torch_compile_cache` (OPENPI_DATA_HOME defaults to ~/.cache/openpi, as downloads)."""
    home = os.environ.get("OPENPI_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "openpi")
    return pathlib.Path(home).expanduser() / "torch_compile_cache"


def enable_persistent_cache(path: str | os.PathLike | None = None) -> pathlib.Path:
    """Point inductor's FX-graph and AOTAutograd caches at `path` (default `cache_dir()`) and turn them on.

    Sets TORCHINDUCTOR_CACHE_DIR (inductor reads it at each cache access; torch itself fills it with a /tmp default
    once anything asked for the cache dir, so an existing value is not a user choice: move the cache with
    OPENPI_DATA_HOME or `path`)."""
    path = pathlib.Path(path) if path is not None else cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "1"
    os.environ["TORCHINDUCTOR_AUTOGRAD_CACHE"] = "1"
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    return path


def compile_model(model, mode: str | None = "default", *, compile_prefix: bool = True, cache: str | None = None):
    """Compile `model`'s denoising step (and the prefix pass unless `compile_prefix=False`) in place; returns it.

    The first call of each compiled function compiles (or loads from the persistent cache)."""
    if mode in EAGER:
        return model
    if mode not in MODES:
        raise ValueError(f"pytorch_compile_mode {mode!r}: use one of {MODES} or None for eager")
    path = enable_persistent_cache(cache)
    logger.info("torch.compile(mode=%s) of the denoising step%s; cache %s", mode, " and prefix" * compile_prefix, path)
    model._velocity_impl = torch.compile(model._velocity, mode=mode, dynamic=False)
    if compile_prefix:
        model._prefix_impl = torch.compile(model._prefix, mode=mode, dynamic=False)
    model.compile_mode = mode
    return model
