"""Decoded-frame cache: a LeRobot dataset materialised once as numpy arrays, so a training step never waits on video.

Decoding the dataset's mp4 frames per sample (what `LeRobotDataset.__getitem__` does) costs milliseconds per frame
and per camera, which on a small model or a CPU is most of a training step. The cache decodes every episode's video
once, sequentially (LeRobot's own `decode_video_frames`, the same timestamps and tolerance as `__getitem__`), stores
frames as uint8 HWC `.npy` files beside the numeric columns, and serves samples by indexing memory-mapped arrays.
Samples are identical to the LeRobot path's (images HWC uint8, action chunks clamped at the episode end, `task`).

The cache lives under `$OPENPI_DATA_HOME/frame_cache/<repo_id>/<fingerprint>`; the fingerprint covers the dataset's
`meta/` files and the action-chunk request, so a re-recorded or appended dataset gets a new cache. It is written
into a temporary folder and renamed when complete (a crash never leaves a half cache that looks valid).
Enable it with `TrainConfig.frame_cache` (`--frame-cache`).
"""

from __future__ import annotations

from collections.abc import Sequence
import hashlib
import json
import logging
import os
import pathlib
import shutil
import time

import numpy as np

logger = logging.getLogger("openpi.data")

_FORMAT_VERSION = 1


def _cache_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("OPENPI_DATA_HOME", "~/.cache/openpi")).expanduser() / "frame_cache"


def _fingerprint(meta_dir: pathlib.Path, action_keys: Sequence[str], action_horizon: int) -> str:
    h = hashlib.sha256(f"v{_FORMAT_VERSION}|{list(action_keys)}|{action_horizon}".encode())
    for path in sorted(p for p in meta_dir.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(meta_dir)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _uint8_hwc(frames) -> np.ndarray:
    """LeRobot decoded frames (float [N,C,H,W] in [0,1]) -> uint8 [N,H,W,C], rounded like the per-sample path."""
    x = frames.numpy() if hasattr(frames, "numpy") else np.asarray(frames)
    return (np.transpose(x, (0, 2, 3, 1)) * 255).round().astype(np.uint8)


def build(dataset, cache_dir: pathlib.Path, action_keys: Sequence[str], action_horizon: int) -> None:
    """Decode `dataset` (a LeRobotDataset without delta timestamps) into `cache_dir` (atomic)."""
    from lerobot.datasets.video_utils import decode_video_frames

    tmp = cache_dir.with_name(cache_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    meta = dataset.meta
    skip = set(meta.video_keys) | {"task"}
    hf = dataset.hf_dataset.with_format("numpy")
    table = hf[:]
    columns = {k: np.stack(v) if v.dtype == object else np.asarray(v) for k, v in table.items() if k not in skip}
    n = len(hf)
    index = columns["index"]
    if not np.array_equal(index, np.arange(index[0], index[0] + n)):
        raise ValueError("frame cache: the dataset's `index` column is not contiguous; re-record or convert it")
    start = time.time()
    for key in meta.video_keys:
        shape = meta.features[key]["shape"]  # (H, W, C)
        out = np.lib.format.open_memmap(tmp / f"{key}.npy", mode="w+", dtype=np.uint8, shape=(n, *shape))
        for ep_idx in np.unique(columns["episode_index"]):
            rows = np.nonzero(columns["episode_index"] == ep_idx)[0]
            ep = meta.episodes[int(ep_idx)]
            offset = ep[f"videos/{key}/from_timestamp"]
            stamps = [float(offset + t) for t in columns["timestamp"][rows]]
            frames = decode_video_frames(
                dataset.root / meta.get_video_file_path(int(ep_idx), key),
                stamps,
                dataset.tolerance_s,
                dataset.video_backend,
            )
            out[rows] = _uint8_hwc(frames)
        out.flush()
        del out
        logger.info("frame cache: decoded %s (%d frames) in %.0fs", key, n, time.time() - start)
    for key, arr in columns.items():
        np.save(tmp / f"{key}.npy", arr)
    tasks = {int(row["task_index"]): str(name) for name, row in meta.tasks.iterrows()}
    (tmp / "meta.json").write_text(
        json.dumps(
            {
                "format": _FORMAT_VERSION,
                "num_frames": n,
                "video_keys": list(meta.video_keys),
                "columns": sorted(columns),
                "action_keys": list(action_keys),
                "action_horizon": action_horizon,
                "tasks": tasks,
            }
        )
    )
    if cache_dir.exists():
        shutil.rmtree(cache_dir)
    tmp.rename(cache_dir)


class CachedLeRobotSamples:
    """Samples of a LeRobot dataset from its frame cache (what `_LeRobotSamples` yields, without video decoding)."""

    def __init__(self, cache_dir: pathlib.Path, prompt_from_task: bool):
        info = json.loads((cache_dir / "meta.json").read_text())
        self._n = info["num_frames"]
        self._horizon = info["action_horizon"]
        self._action_keys = info["action_keys"]
        self._video_keys = info["video_keys"]
        self._tasks = {int(k): v for k, v in info["tasks"].items()}
        self._prompt_from_task = prompt_from_task
        self._arrays = {
            key: np.load(cache_dir / f"{key}.npy", mmap_mode="r") for key in [*info["columns"], *self._video_keys]
        }
        episodes = self._arrays["episode_index"]
        # Row range of each frame's episode (action chunks are clamped to it, as LeRobot does).
        change = np.flatnonzero(np.diff(episodes)) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [self._n]])
        which = np.repeat(np.arange(len(starts)), ends - starts)
        self._ep_start, self._ep_end = starts[which], ends[which]

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index) -> dict:
        i = int(index)
        if not 0 <= i < self._n:
            raise IndexError(f"index {i} out of range for {self._n} frames")
        sample = {}
        for key, arr in self._arrays.items():
            if key in self._action_keys:
                rows = np.clip(np.arange(i, i + self._horizon), self._ep_start[i], self._ep_end[i] - 1)
                sample[key] = np.array(arr[rows])
                sample[f"{key}_is_pad"] = np.arange(i, i + self._horizon) >= self._ep_end[i]
            else:
                sample[key] = np.array(arr[i])
        sample["task"] = self._tasks[int(sample["task_index"])]
        if self._prompt_from_task:
            sample["prompt"] = sample["task"]
        return sample


def cached_samples(repo_id: str, action_keys: Sequence[str], action_horizon: int, *, prompt_from_task: bool):
    """The frame cache of `repo_id` (under HF_LEROBOT_HOME), built on first use."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(repo_id, video_backend="torchcodec")
    cache_dir = _cache_root() / repo_id / _fingerprint(dataset.root / "meta", action_keys, action_horizon)
    if not (cache_dir / "meta.json").exists():
        logger.info("frame cache: building %s (decodes every video frame once)", cache_dir)
        build(dataset, cache_dir, action_keys, action_horizon)
    return CachedLeRobotSamples(cache_dir, prompt_from_task)
