"""Norm stats computation (used by scripts/compute_norm_stats.py).

Fast path (default): only the state/action parquet columns are read (pyarrow, no pandas row objects), video is never
decoded, and action chunks are built exactly like LeRobot's `delta_timestamps` (clamped at the episode end). The
repack + data transforms then run once per *batch* on stacked arrays ([B, D] state, [B, H, D] actions); that batched
call is checked against the per-frame pipeline on a probe batch first and the code falls back to per-frame transforms
if a transform is not batch-safe. The slow path runs every item through the full data pipeline (decodes video).
Both paths feed `RunningStats` the same batches in the same order, so they give identical statistics.
"""

from __future__ import annotations

from collections.abc import Callable
import logging
import pathlib

import numpy as np

import openpi.shared.normalize as normalize
import openpi.training.data_loader as _data_loader
import openpi.transforms as transforms

logger = logging.getLogger("openpi.norm_stats")

STATS_KEYS = ("state", "actions")
# A batch function maps an int64 index array to {"state": [B, ...], "actions": [B, ...]}.
BatchFn = Callable[[np.ndarray], dict[str, np.ndarray]]


def _image_keys(features: dict) -> set[str]:
    return {k for k, f in features.items() if f["dtype"] in ("video", "image")}


def _local_info(repo_id: str) -> tuple[pathlib.Path, dict]:
    """(root, meta/info.json) of a dataset; reads the local copy directly (LeRobotDatasetMetadata also loads every
    episode's metadata, which costs more than the whole fast path) and falls back to lerobot (may download)."""
    import json

    from lerobot.utils import constants

    from openpi.training import dataset_version

    root = pathlib.Path(constants.HF_LEROBOT_HOME) / repo_id
    dataset_version.check_local(repo_id, root)  # a v2.x copy: names `make convert-dataset`
    info = root / "meta" / "info.json"
    if not info.exists():
        from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

        try:
            meta = LeRobotDatasetMetadata(repo_id)
        except Exception as e:
            raise FileNotFoundError(
                f"LeRobot dataset {repo_id!r} not found at {root} (HF_LEROBOT_HOME={constants.HF_LEROBOT_HOME}) "
                f"and not downloadable ({type(e).__name__}). Set HF_LEROBOT_HOME (make targets use ./datasets) or "
                "run `make download-dataset`."
            ) from e
        return pathlib.Path(meta.root), meta.info
    return root, json.loads(info.read_text())


def _read_columns(files: list[pathlib.Path], columns: list[str]) -> dict[str, np.ndarray]:
    """Reads parquet columns into dense numpy arrays ([N] for scalars, [N, D] for fixed-length vectors)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # ParquetFile.read, not pq.read_table: the latter imports pyarrow.dataset and pandas (~1.2 s per process).
    table = pa.concat_tables([pq.ParquetFile(f).read(columns=columns) for f in files])
    out = {}
    for name in columns:
        col = table.column(name).combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
            if col.null_count:
                raise ValueError(f"parquet column {name!r} has null rows; the dataset is incomplete")
            offsets = np.asarray(col.offsets) if not pa.types.is_fixed_size_list(col.type) else None
            values = col.flatten().to_numpy(zero_copy_only=False)
            width = len(values) // max(len(col), 1)
            if offsets is not None and not np.all(np.diff(offsets) == width):
                raise ValueError(f"parquet column {name!r} has rows of different lengths; expected a fixed-size vector")
            out[name] = values.reshape(len(col), width)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


def _pipeline(data_config):
    return transforms.compose(
        [*data_config.repack_transforms.inputs, *data_config.data_transforms.inputs, transforms.RemoveStrings()]
    )


def iter_fast(data_config, action_horizon: int) -> tuple[int, BatchFn]:
    """Returns (number of frames, batch function) reading only the parquet state/action columns."""
    root, info = _local_info(data_config.repo_id)
    features = info["features"]
    image_keys = _image_keys(features)
    files = sorted((root / "data").rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(
            f"no parquet files under {root}/data; the dataset {data_config.repo_id!r} is incomplete"
        )
    needed = set()
    for t in data_config.repack_transforms.inputs:
        if isinstance(t, transforms.RepackTransform):
            needed |= set(transforms.flatten_dict(t.structure).values())
    missing = sorted(k for k in needed - image_keys - {"prompt"} if k not in features)
    if missing:
        raise KeyError(f"dataset {data_config.repo_id!r} has no feature(s) {missing} that the data config repacks")
    columns = sorted((needed - image_keys - {"prompt"}) | {"episode_index", "frame_index"})
    raw = _read_columns(files, columns)
    order = np.lexsort((raw["frame_index"], raw["episode_index"]))  # stable sort by (episode, frame)
    episodes = raw["episode_index"][order]
    arrays = {
        c: np.ascontiguousarray(raw[c][order], dtype=np.float32)
        for c in columns
        if c not in ("episode_index", "frame_index")
    }
    n = len(order)
    # index of the last frame of each frame's episode, for clamping action chunks like LeRobot does
    boundaries = np.flatnonzero(np.diff(episodes)) + 1
    stops = np.concatenate([boundaries, [n]])
    ends = np.repeat(stops - 1, np.diff(np.concatenate([[0], stops])))
    offsets = np.arange(action_horizon)
    dummy_image = np.zeros((8, 8, 3), np.uint8)
    pipeline = _pipeline(data_config)
    seq_keys = set(data_config.action_sequence_keys)

    def raw_sample(idx) -> dict:
        """Un-transformed sample for one frame index (int) or a batch of indices (int array)."""
        idx_arr = np.asarray(idx)
        chunk = np.minimum(idx_arr[..., None] + offsets, ends[idx_arr][..., None])
        s = {k: (v[chunk] if k in seq_keys else v[idx_arr]).copy() for k, v in arrays.items()}
        for k in image_keys:
            s[k] = dummy_image
        s["prompt"] = ""
        return s

    def per_frame(idx: np.ndarray) -> dict[str, np.ndarray]:
        items = [pipeline(raw_sample(int(i))) for i in idx]
        return {k: np.stack([np.asarray(it[k]) for it in items]) for k in STATS_KEYS}

    def batched(idx: np.ndarray) -> dict[str, np.ndarray]:
        out = pipeline(raw_sample(idx))
        return {k: np.asarray(out[k]) for k in STATS_KEYS}

    probe = np.unique(np.concatenate([np.arange(min(n, 4)), ends[: min(n, 1)], np.arange(max(n - 4, 0), n)]))
    try:
        ok = all(np.array_equal(a, b) for a, b in zip(batched(probe).values(), per_frame(probe).values(), strict=True))
        if not ok:
            logger.info("batched data transforms differ from per-frame ones; transforming frame by frame (slower)")
    except Exception as e:  # a transform that only accepts single frames (e.g. indexes state[[6, 13]])
        logger.info(
            "data transforms are not batch-safe (%s: %s); transforming frame by frame (slower)", type(e).__name__, e
        )
        ok = False
    return n, batched if ok else per_frame


def iter_slow(config, data_config) -> tuple[int, BatchFn]:
    """Every item through the LeRobot dataset (decodes video) and the full transform pipeline."""
    dataset = _data_loader.create_torch_dataset(data_config, config.model.action_horizon, config.model)
    ds = _data_loader.TransformedDataset(
        dataset,
        [*data_config.repack_transforms.inputs, *data_config.data_transforms.inputs, transforms.RemoveStrings()],
    )

    def get(idx: np.ndarray) -> dict[str, np.ndarray]:
        items = [ds[int(i)] for i in idx]
        return {k: np.stack([np.asarray(it[k]) for it in items]) for k in STATS_KEYS}

    return len(ds), get


def frame_order(n: int, batch_size: int, max_frames: int | None = None, seed: int = 0) -> tuple[np.ndarray, int]:
    """Frame indices in the order they are batched, and the batch size (full batches only, like drop_last)."""
    bs = batch_size
    if max_frames is not None and max_frames < n:
        return np.random.default_rng(seed).permutation(n)[: (max_frames // bs) * bs], bs
    if n < bs:
        return np.arange(n), n
    return np.arange((n // bs) * bs), bs


def compute(config, *, max_frames: int | None = None, slow: bool = False, seed: int = 0, progress: bool = False):
    """Returns (data_config, {"state": NormStats, "actions": NormStats}, number of frames used). `progress` shows a
    progress bar over the batches (frames/s) on stderr."""
    import tqdm

    data_config = config.data.create(config.assets_dirs, config.model)
    if data_config.repo_id in (None, "fake"):
        raise ValueError(f"config {config.name!r} uses fake data; norm stats need a real dataset (data.repo_id)")
    n, get = iter_slow(config, data_config) if slow else iter_fast(data_config, config.model.action_horizon)
    order, bs = frame_order(n, config.batch_size, max_frames, seed)
    stats = {k: normalize.RunningStats() for k in STATS_KEYS}
    bar = tqdm.tqdm(total=len(order), desc="norm stats", unit="frame", disable=not progress, mininterval=0.5)
    for b in range(0, len(order), bs):
        batch = get(order[b : b + bs])
        bar.update(len(batch["state"]))
        for k in STATS_KEYS:
            stats[k].update(batch[k])
    bar.close()
    return data_config, {k: s.get_statistics() for k, s in stats.items()}, len(order)
