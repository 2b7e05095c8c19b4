"""Make an inference package from a training step directory (no optimizer / train_state).

JAX step dir    `<step>/{params/, train_state/, assets/}`  -> package `{params/, assets/}`
PyTorch step dir `<step>/{model.safetensors, optimizer.pt, metadata.pt, config.json?, assets/}`
                                                    -> package `{model.safetensors, config.json, assets/}`

The package is written to a temp dir beside the destination and renamed into place (atomic). The original step
dir is never modified unless `strip_train_state_in_place` is called explicitly.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import uuid

from openpi.transfer.hub import TransferError


def detect_format(step_dir: pathlib.Path) -> str:
    step_dir = pathlib.Path(step_dir)
    if (step_dir / "model.safetensors").is_file():
        return "pytorch"
    if (step_dir / "params").is_dir():
        return "jax"
    raise TransferError(
        f"--ckpt {step_dir}: not a checkpoint step dir (expected params/ for JAX or model.safetensors for PyTorch). "
        "Pass e.g. checkpoints/<config>/<exp>/<step>."
    )


def infer_config_name(step_dir: pathlib.Path) -> str | None:
    """checkpoints/<config>/<exp>/<step> -> <config> if that name is a registered TrainConfig."""
    parts = pathlib.Path(step_dir).resolve().parts
    if len(parts) < 3:
        return None
    name = parts[-3]
    try:
        from openpi.training import config as _config

        _config.get_config(name)
    except Exception:
        return None
    return name


def default_package_dir(step_dir: pathlib.Path) -> pathlib.Path:
    """checkpoints/<config>/<exp>/<step> -> checkpoints/<config>/<exp>_package/<step> (outside the exp dir, so
    resume logic and checkpoint retention never see it)."""
    step_dir = pathlib.Path(step_dir)
    return step_dir.parent.with_name(step_dir.parent.name + "_package") / step_dir.name


PACKAGE_MEMBERS = ("params", "assets", "model.safetensors", "config.json")


def package_files(step_dir: pathlib.Path) -> list[tuple[str, int]]:
    """(relative path, size) of what the package of `step_dir` will contain (for --dry-run)."""
    step_dir = pathlib.Path(step_dir)
    detect_format(step_dir)
    out = []
    for p in sorted(step_dir.rglob("*")):
        rel = p.relative_to(step_dir).as_posix()
        if p.is_file() and rel.split("/")[0] in PACKAGE_MEMBERS:
            out.append((rel, p.stat().st_size))
    return out


def _pytorch_config_json(step_dir: pathlib.Path) -> dict:
    cfg_file = step_dir / "config.json"
    if cfg_file.is_file():
        return json.loads(cfg_file.read_text())
    meta = step_dir / "metadata.pt"
    if meta.is_file():
        import torch

        md = torch.load(meta, map_location="cpu", weights_only=False)
        if isinstance(md, dict) and isinstance(md.get("model_config"), dict):
            return md["model_config"]
    return {}


def package_checkpoint(
    step_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, overwrite: bool = False
) -> pathlib.Path:
    """Copy the inference parts of `step_dir` into `out_dir` (default: default_package_dir(step_dir))."""
    step_dir = pathlib.Path(step_dir)
    fmt = detect_format(step_dir)
    out = pathlib.Path(out_dir) if out_dir else default_package_dir(step_dir)
    if out.resolve() == step_dir.resolve():
        raise TransferError("--out must differ from --ckpt (packaging never modifies the original).")
    if out.exists():
        if not overwrite:
            raise TransferError(f"{out} already exists; pass --overwrite to replace it or choose another --out.")
        shutil.rmtree(out)
    if not (step_dir / "assets").is_dir():
        raise TransferError(
            f"{step_dir}/assets is missing: the package needs assets/<asset_id>/norm_stats.json for serving. "
            "Copy the norm stats from the training assets dir (assets/<config>/<asset_id>) into it."
        )
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        shutil.copytree(step_dir / "assets", tmp / "assets")
        if fmt == "jax":
            shutil.copytree(step_dir / "params", tmp / "params")
        else:
            shutil.copy2(step_dir / "model.safetensors", tmp / "model.safetensors")
            cfg = _pytorch_config_json(step_dir)
            (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def strip_train_state_in_place(step_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Delete the resume-only parts of a step dir (JAX train_state/, PyTorch optimizer.pt). Returns what was removed."""
    step_dir = pathlib.Path(step_dir)
    detect_format(step_dir)
    removed = []
    for name in ("train_state", "optimizer.pt"):
        p = step_dir / name
        if p.is_dir():
            shutil.rmtree(p)
            removed.append(p)
        elif p.is_file():
            p.unlink()
            removed.append(p)
    return removed


def verify_loadable(package_dir: str | os.PathLike, config_name: str):
    """Load the package exactly as serve_policy does (create_trained_policy). Returns the Policy."""
    try:
        from openpi.policies import policy_config
        from openpi.training import config as _config
    except ImportError as e:  # pragma: no cover - depends on other areas being installed
        raise TransferError(f"cannot verify: serving code is not importable ({e}); pass --no-verify to skip.") from e
    try:
        train_config = _config.get_config(config_name)
    except Exception as e:
        raise TransferError(f"--config-name {config_name!r}: not a registered training config ({e}).") from e
    try:
        return policy_config.create_trained_policy(train_config, pathlib.Path(package_dir))
    except Exception as e:
        raise TransferError(
            f"package {package_dir} does not load with config {config_name!r}: {type(e).__name__}: {e}. "
            "Check --config-name matches the training config and that assets/ holds the norm stats."
        ) from e
