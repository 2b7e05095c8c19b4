"""Save / load PyTorch checkpoints (`model.safetensors` + `config.json`)."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import torch

from openpi.models.pi0_config import Pi0Config
from openpi.models_pytorch.pi0_pytorch import PI0Pytorch


def save_pytorch_model(model: PI0Pytorch, out_dir: str | os.PathLike, *, precision: str | None = None) -> pathlib.Path:
    import safetensors.torch

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "model.safetensors.tmp"
    safetensors.torch.save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, out_dir / "model.safetensors")
    cfg = {
        k: v for k, v in dataclasses.asdict(model.config).items() if isinstance(v, (int, float, str, bool, type(None)))
    }
    cfg["precision"] = precision or ("bfloat16" if model.compute_dtype == torch.bfloat16 else "float32")
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    return out_dir / "model.safetensors"


def load_pytorch_model(
    config: Pi0Config, checkpoint_dir: str | os.PathLike, device: str = "cpu", precision: str | None = None
) -> PI0Pytorch:
    import safetensors.torch

    checkpoint_dir = pathlib.Path(checkpoint_dir)
    path = checkpoint_dir / "model.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (convert a JAX checkpoint with `make convert`)")
    if precision is None:
        cfg_file = checkpoint_dir / "config.json"
        precision = json.loads(cfg_file.read_text()).get("precision") if cfg_file.exists() else None
        precision = precision or config.dtype
    model = PI0Pytorch(config)
    state = safetensors.torch.load_file(str(path))
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match config (missing {missing[:5]}, unexpected {unexpected[:5]}); "
            "is it the right --policy.config / variant?"
        )
    return model.to_precision(precision).to(device)
