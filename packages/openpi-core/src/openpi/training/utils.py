"""Small pytree / filesystem helpers shared by the JAX and PyTorch trainers and the weight loaders."""

from __future__ import annotations

from collections.abc import Mapping
import json
import logging
import os
import pathlib
import time
from typing import Any

import numpy as np

logger = logging.getLogger("openpi.training")


def flatten_dict(tree: Mapping, sep: str = "/", prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {"a/b/c": leaf}. Empty sub-dicts are dropped."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten_dict(value, sep=sep, prefix=path))
        else:
            out[path] = value
    return out


def unflatten_dict(flat: Mapping[str, Any], sep: str = "/") -> dict:
    """{"a/b/c": leaf} -> nested dict."""
    out: dict = {}
    for path, value in flat.items():
        node = out
        *parents, last = path.split(sep)
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def strip_value_leaves(tree: Any) -> Any:
    """Remove a trailing ``value`` key (nnx.State as saved by upstream: ``.../kernel/value``)."""
    if isinstance(tree, Mapping):
        if set(tree.keys()) == {"value"} and not isinstance(tree["value"], Mapping):
            return tree["value"]
        return {k: strip_value_leaves(v) for k, v in tree.items()}
    return tree


def add_value_leaves(tree: Any) -> Any:
    """Inverse of :func:`strip_value_leaves`: wrap every leaf as ``{"value": leaf}`` (upstream params layout)."""
    if isinstance(tree, Mapping):
        return {k: add_value_leaves(v) for k, v in tree.items()}
    return {"value": tree}


def tree_global_norm(leaves) -> float:
    return float(np.sqrt(sum(float(np.sum(np.square(np.asarray(x, dtype=np.float64)))) for x in leaves)))


class MetricsLogger:
    """Append-only ``metrics.jsonl`` (one JSON object per log step) plus optional wandb.

    The file is flushed and fsync'ed after each line so a killed run keeps every logged step. On resume,
    lines with ``step >= resume_step`` are dropped first so the log never contains duplicated steps.
    """

    def __init__(self, path: pathlib.Path | str, *, resume_step: int | None = None, wandb_run=None, enabled=True):
        self.path = pathlib.Path(path)
        self.enabled = enabled
        self.wandb_run = wandb_run
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = []
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", -1) < resume_step:
                        kept.append(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(k + "\n" for k in kept))
            os.replace(tmp, self.path)
        elif resume_step is None and self.path.exists():
            self.path.unlink()

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), **{k: _to_py(v) for k, v in metrics.items()}, "time": time.time()}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.wandb_run is not None:
            self.wandb_run.log(dict(metrics), step=int(step))


def read_metrics(path: pathlib.Path | str) -> list[dict]:
    """Read a ``metrics.jsonl`` file (skipping a possibly truncated last line)."""
    out = []
    for line in pathlib.Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _to_py(v):
    if isinstance(v, (np.ndarray, np.generic)) or hasattr(v, "item"):
        return float(np.asarray(v))
    return v


def maybe_init_wandb(
    enabled: bool, *, project: str, name: str, config: Any, checkpoint_dir: pathlib.Path, resume: bool
):
    """Start a wandb run when enabled and importable; never required. Keeps ``wandb_id.txt`` for resume."""
    if not enabled or os.environ.get("WANDB_MODE") == "disabled":
        return None
    try:
        import wandb
    except ImportError:
        logger.warning("wandb_enabled=True but wandb is not installed; logging to metrics.jsonl only")
        return None
    id_file = checkpoint_dir / "wandb_id.txt"
    try:
        if resume and id_file.exists():
            return wandb.init(id=id_file.read_text().strip(), resume="must", project=project)
        run = wandb.init(name=name, project=project, config=_jsonable(config))
        id_file.write_text(run.id)
        return run
    except Exception as e:  # offline machines: never fail training because of wandb
        logger.warning("wandb init failed (%s); logging to metrics.jsonl only", e)
        return None


def _jsonable(config: Any) -> dict:
    try:
        import dataclasses

        return json.loads(json.dumps(dataclasses.asdict(config), default=str))
    except Exception:
        return {"repr": repr(config)}
