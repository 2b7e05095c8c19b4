"""Norm stats computation (used by scripts/compute_norm_stats.py).

Fast path: only the state/action parquet columns are read, video is never decoded; action chunks are built exactly
like LeRobot's `delta_timestamps` (clamped at the episode end). The slow path runs the full data pipeline.
"""

from __future__ import annotations

import pathlib

import numpy as np

import openpi.shared.normalize as normalize
import openpi.training.data_loader as _data_loader
import openpi.transforms as transforms


def _image_keys(meta) -> set[str]:
    return {k for k, f in meta.features.items() if f["dtype"] in ("video", "image")}


def iter_fast(data_config, action_horizon: int):
    """Yield transformed samples (dicts with state/actions) from the parquet columns only."""
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
    import pandas as pd

    meta = LeRobotDatasetMetadata(data_config.repo_id)
    image_keys = _image_keys(meta)
    files = sorted((pathlib.Path(meta.root) / "data").rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no parquet files under {meta.root}/data")
    needed = set()
    for t in data_config.repack_transforms.inputs:
        if isinstance(t, transforms.RepackTransform):
            needed |= set(transforms.flatten_dict(t.structure).values())
    columns = sorted((needed - image_keys - {"prompt"}) | {"episode_index", "frame_index"})
    df = pd.concat([pd.read_parquet(f, columns=columns) for f in files], ignore_index=True)
    df = df.sort_values(["episode_index", "frame_index"], kind="stable").reset_index(drop=True)
    arrays = {
        c: np.stack(df[c].to_numpy()).astype(np.float32) for c in columns if c not in ("episode_index", "frame_index")
    }
    episodes = df["episode_index"].to_numpy()
    n = len(df)
    # index of the last frame of each frame's episode, for clamping action chunks like LeRobot does
    ends = np.zeros(n, dtype=np.int64)
    boundaries = np.flatnonzero(np.diff(episodes)) + 1
    starts = np.concatenate([[0], boundaries])
    stops = np.concatenate([boundaries, [n]])
    for s, e in zip(starts, stops, strict=True):
        ends[s:e] = e - 1
    offsets = np.arange(action_horizon)
    chunk_idx = np.minimum(np.arange(n)[:, None] + offsets[None, :], ends[:, None])
    dummy_image = np.zeros((8, 8, 3), np.uint8)
    pipeline = transforms.compose(
        [*data_config.repack_transforms.inputs, *data_config.data_transforms.inputs, transforms.RemoveStrings()]
    )

    def sample(i: int) -> dict:
        s = {k: (v[chunk_idx[i]] if k in data_config.action_sequence_keys else v[i]).copy() for k, v in arrays.items()}
        for k in image_keys:
            s[k] = dummy_image
        s["prompt"] = ""
        return pipeline(s)

    return n, sample


def iter_slow(config, data_config):
    dataset = _data_loader.create_torch_dataset(data_config, config.model.action_horizon, config.model)
    ds = _data_loader.TransformedDataset(
        dataset,
        [*data_config.repack_transforms.inputs, *data_config.data_transforms.inputs, transforms.RemoveStrings()],
    )
    return len(ds), ds.__getitem__


def compute(config, *, max_frames: int | None = None, slow: bool = False, seed: int = 0):
    data_config = config.data.create(config.assets_dirs, config.model)
    if data_config.repo_id in (None, "fake"):
        raise ValueError(f"config {config.name!r} uses fake data; norm stats need a real dataset (data.repo_id)")
    n, get = iter_slow(config, data_config) if slow else iter_fast(data_config, config.model.action_horizon)
    bs = config.batch_size
    if max_frames is not None and max_frames < n:
        order = np.random.default_rng(seed).permutation(n)[: (max_frames // bs) * bs]
    else:
        order = np.arange((n // bs) * bs) if n >= bs else np.arange(n)  # full batches, in order (drop_last)
        if n < bs:
            bs = n
    keys = ("state", "actions")
    stats = {k: normalize.RunningStats() for k in keys}
    for b in range(0, len(order), bs):
        items = [get(int(i)) for i in order[b : b + bs]]
        for k in keys:
            stats[k].update(np.stack([np.asarray(it[k]) for it in items]))
    return data_config, {k: s.get_statistics() for k, s in stats.items()}, len(order)
