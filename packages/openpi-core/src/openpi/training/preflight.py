"""What both trainers check before they download or load weights, and the DRY_RUN report.

Order (JAX and PyTorch): build the data config (an error is an error; only fake data has no dataset) -> a prompt
source -> the local dataset's format -> the norm stats -> the data loader and its first batch -> [DRY_RUN: abstract model, optimizer
state and sharding, parameter counts, batch shapes, memory per device; exit] -> checkpoint dir -> weights.
A wrong dataset name or missing norm stats is reported in seconds, not after a 12 GB download.
"""

from __future__ import annotations

from collections.abc import Iterator
import logging
import math
from typing import Any

import numpy as np

from openpi import transforms as _transforms
from openpi.training import dataset_version

logger = logging.getLogger("openpi.training")


def build_data_config(config):
    """`config.data.create(...)`: never suppressed (it also gives the checkpoints their norm stats). None when the
    config has no data factory (a caller-supplied data iterator feeds the loop)."""
    return None if config.data is None else config.data.create(config.assets_dirs, config.model)


def is_fake(data_cfg) -> bool:
    return data_cfg is not None and data_cfg.repo_id == "fake"


def has_prompt_source(data_cfg) -> bool:
    """Whether every training sample gets the prompt the model tokenizes: from the dataset's task strings
    (`prompt_from_task`), a `prompt` field the repack keeps, or a default prompt. True when nothing tokenizes one."""
    if not any(isinstance(t, _transforms.TokenizePrompt) for t in data_cfg.model_transforms.inputs):
        return True
    if data_cfg.prompt_from_task:
        return True
    groups = (data_cfg.repack_transforms, data_cfg.data_transforms, data_cfg.model_transforms)
    steps = [t for g in groups for t in g.inputs]
    return any(isinstance(t, _transforms.InjectDefaultPrompt) and t.prompt is not None for t in steps) or any(
        isinstance(t, _transforms.RepackTransform) and "prompt" in t.structure for t in steps
    )


def check_prompt(config, data_cfg) -> None:
    """A config whose samples carry no prompt (the inference configs `pi0_aloha` / `pi05_aloha`, like upstream's: the
    serving client sends the task with each observation) cannot train; say so, and how to give one, instead of the
    first batch stopping at the tokenizer's "Prompt is required"."""
    if has_prompt_source(data_cfg):
        return
    raise ValueError(
        f"config {config.name!r} has no prompt to train with: its data config sets no default_prompt and does not "
        "read the dataset's task strings (an inference config: the serving client sends 'prompt' with each "
        'observation). Give the task on the command line: --data.default-prompt "<task>" (or set '
        "default_prompt in the config's data)."
    )


def check_data(config, data_cfg) -> None:
    """A prompt source, the dataset's format and the norm stats, before anything expensive. Fake data needs none."""
    if data_cfg is None or is_fake(data_cfg):
        return
    check_prompt(config, data_cfg)
    if data_cfg.repo_id is None:
        raise ValueError(
            f"config {config.name!r}: data.repo_id is not set; pass --data.repo-id <folder under HF_LEROBOT_HOME>"
        )
    root = dataset_version.check_local(data_cfg.repo_id)  # v2.x: names `make convert-dataset`
    if root is None:
        if "/" not in data_cfg.repo_id:  # hub ids are owner/name: a bare name can only be a local folder
            raise FileNotFoundError(
                f"config {config.name!r}: {dataset_version.dataset_missing_message(data_cfg.repo_id)}"
            )
        logger.info("dataset %r is not under HF_LEROBOT_HOME; LeRobot will look for it on the hub", data_cfg.repo_id)
    if data_cfg.norm_stats is None:
        assets = config.data.assets.assets_dir or config.assets_dirs
        raise FileNotFoundError(
            f"config {config.name!r}: no norm stats at {assets}/{data_cfg.asset_id}/norm_stats.json. Compute them "
            f"first: `make norm-stats CONFIG={config.name}` (seconds; reads the dataset's parquet columns only)."
        )


def first_batch(config, data_iter: Iterator) -> tuple[Any, Iterator]:
    """Take the first batch now (dataset, decoding and transforms all run once); returns it and an iterator that
    yields it again first, so training sees the same stream."""
    try:
        batch = next(data_iter)
    except StopIteration:
        raise ValueError(f"config {config.name!r}: the data loader yielded no batch") from None
    except Exception as e:
        e.add_note(f"(while taking the first batch of config {config.name!r}, before loading any weights)")
        raise
    return batch, _Peeked(batch, data_iter)


class _Peeked:
    """`first`, then the rest of `rest`; keeps the loader's `data_wait_s` (seconds waited for batches)."""

    def __init__(self, first, rest: Iterator):
        self._first, self._rest, self._used = first, rest, False

    def __iter__(self):
        return self

    def __next__(self):
        if not self._used:
            self._used = True
            first, self._first = self._first, None
            return first
        return next(self._rest)

    @property
    def data_wait_s(self) -> float | None:
        """None for a plain iterator: the trainer then times `next()` itself."""
        return getattr(self._rest, "data_wait_s", None)


# ------------------------------------------------------------------------------------------------ DRY_RUN report
def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def fmt_count(n: int) -> str:
    return f"{n:,} ({n / 1e9:.3f} B)" if n >= 1e8 else f"{n:,}"


def _leaves_with_names(tree, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted name, leaf) for nested dicts / dataclasses (Observation) / lists of arrays."""
    if isinstance(tree, dict):
        out = []
        for k, v in tree.items():
            out += _leaves_with_names(v, f"{prefix}{k}.")
        return out
    if hasattr(tree, "to_dict") and callable(tree.to_dict):  # openpi.models.model.Observation
        return _leaves_with_names(tree.to_dict(), prefix)
    if isinstance(tree, (list, tuple)):
        out = []
        for i, v in enumerate(tree):
            out += _leaves_with_names(v, f"{prefix}{i}.")
        return out
    return [] if tree is None else [(prefix.rstrip("."), tree)]


def batch_lines(batch) -> list[str]:
    """`name: shape dtype` for every array of an (observation, actions) batch."""
    obs, actions = batch
    lines = []
    for name, leaf in [*_leaves_with_names(obs, "obs."), ("actions", actions)]:
        shape = tuple(getattr(leaf, "shape", ()))
        dtype = str(getattr(leaf, "dtype", type(leaf).__name__)).removeprefix("torch.")
        lines.append(f"{name}: {shape} {dtype}")
    return lines


def batch_bytes(batch) -> int:
    obs, actions = batch
    total = 0
    for _, leaf in [*_leaves_with_names(obs), ("actions", actions)]:
        shape = tuple(getattr(leaf, "shape", ()))
        itemsize = getattr(leaf, "itemsize", None) or np.dtype(str(leaf.dtype).removeprefix("torch.")).itemsize
        total += math.prod(shape) * itemsize
    return total


def print_report(title: str, rows: list[tuple[str, str]], batch) -> None:
    """The DRY_RUN report on stdout, one `[dry-run]` line each."""
    print(f"[dry-run] {title}")
    for key, value in rows:
        print(f"[dry-run]   {key}: {value}")
    print("[dry-run]   first batch (per process):")
    for line in batch_lines(batch):
        print(f"[dry-run]     {line}")
    print("[dry-run] OK: data, norm stats and first batch checked; no weights were downloaded or loaded.")
