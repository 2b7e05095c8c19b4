"""Build a serving Policy from a training config and a checkpoint dir (JAX `params/` or PyTorch `model.safetensors`)."""

from __future__ import annotations

import logging
import pathlib
from typing import Any

from openpi import transforms
from openpi.policies import policy as _policy
from openpi.shared import download
from openpi.shared import normalize as _normalize

logger = logging.getLogger("openpi.policy_config")


def detect_checkpoint_format(checkpoint_dir: pathlib.Path) -> str:
    if (checkpoint_dir / "model.safetensors").is_file():
        return "pytorch"
    if (checkpoint_dir / "params").is_dir():
        return "jax"
    raise FileNotFoundError(
        f"{checkpoint_dir} is not a checkpoint: expected params/ (JAX, from make train) or model.safetensors "
        "(PyTorch, from make train-pytorch / make convert). Pass the step dir, e.g. checkpoints/<config>/<exp>/<step>."
    )


def default_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        return "cpu"


def create_trained_policy(
    train_config,
    checkpoint_dir: pathlib.Path | str,
    *,
    repack_transforms: transforms.Group | None = None,
    sample_kwargs: dict[str, Any] | None = None,
    default_prompt: str | None = None,
    norm_stats: dict[str, _normalize.NormStats] | None = None,
    pytorch_device: str | None = None,
    rtc_method: str | None = None,
    rtc_max_guidance_weight: float = 5.0,
    pytorch_compile_mode: str | None = "config",
) -> _policy.Policy:
    """`rtc_method` (requests carrying `prev_actions`): vjp | identity | prefix; default prefix for a model trained
    with training-time RTC (`model.rtc_max_delay > 0`), else vjp. `pytorch_compile_mode` (PyTorch checkpoints):
    a torch.compile mode, None / "none" for eager, or "config" for `train_config.model.pytorch_compile_mode`."""
    if rtc_method is None:
        rtc_method = "prefix" if getattr(train_config.model, "rtc_max_delay", 0) > 0 else "vjp"
    repack_transforms = repack_transforms or transforms.Group()
    checkpoint_dir = pathlib.Path(download.maybe_download(str(checkpoint_dir)))
    fmt = detect_checkpoint_format(checkpoint_dir)
    logger.info("Loading %s checkpoint from %s", fmt, checkpoint_dir)
    if fmt == "jax":
        import jax.numpy as jnp

        from openpi.models import model as _model

        dtype = jnp.dtype(getattr(train_config.model, "dtype", "float32"))
        model = train_config.model.load(_model.restore_params(checkpoint_dir / "params", dtype=dtype))
    else:
        from openpi.models_pytorch import loading

        pytorch_device = pytorch_device or default_device()
        if pytorch_compile_mode == "config":
            pytorch_compile_mode = getattr(train_config.model, "pytorch_compile_mode", None)
        model = loading.load_pytorch_model(
            train_config.model, checkpoint_dir, pytorch_device, compile_mode=pytorch_compile_mode
        )

    data_config = train_config.data.create(train_config.assets_dirs, train_config.model)
    if norm_stats is None and data_config.repo_id != "fake":
        if data_config.asset_id is None:
            raise ValueError("the config's data has no asset_id; set data.assets.asset_id (or data.repo_id)")
        stats_dir = checkpoint_dir / "assets" / data_config.asset_id
        if not (stats_dir / "norm_stats.json").exists():
            raise FileNotFoundError(
                f"norm stats missing: {stats_dir}/norm_stats.json. Copy assets/{data_config.asset_id}/norm_stats.json "
                f"from the training checkpoint (or the config's assets dir, `make norm-stats CONFIG={train_config.name}`) "
                "into the checkpoint dir."
            )
        norm_stats = _normalize.load(stats_dir)

    return _policy.Policy(
        model,
        transforms=[
            *repack_transforms.inputs,
            transforms.InjectDefaultPrompt(default_prompt),
            *data_config.data_transforms.inputs,
            transforms.Normalize(norm_stats, use_quantiles=data_config.use_quantile_norm),
            *data_config.model_transforms.inputs,
        ],
        output_transforms=[
            *data_config.model_transforms.outputs,
            transforms.Unnormalize(norm_stats, use_quantiles=data_config.use_quantile_norm),
            *data_config.data_transforms.outputs,
            *repack_transforms.outputs,
        ],
        sample_kwargs=sample_kwargs,
        metadata=train_config.policy_metadata,
        is_pytorch=fmt == "pytorch",
        pytorch_device=pytorch_device or "cpu",
        rtc_method=rtc_method,
        rtc_max_guidance_weight=rtc_max_guidance_weight,
    )
