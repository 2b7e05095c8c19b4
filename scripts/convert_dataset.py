"""Convert a local LeRobot v2.1 dataset (the seed's fork recorded these) to v3.0, the format this project reads.

    make convert-dataset REPO=piper_lerobot_data                 # in place: datasets/piper_lerobot_data
    make convert-dataset REPO=piper_lerobot_data SRC=/data/old   # from another folder into datasets/<REPO>

LeRobot's own converter (`lerobot.datasets.v30.convert_dataset_v21_to_v30.convert_dataset`, what LeRobot's v3.0
migration guide runs) does the work, locally: HF_HUB_OFFLINE=1, no hub download, no push. It runs on a staging copy
next to the target; the target is replaced only when the result loads with LeRobotDataset and has the source's frame
count, features and state/action columns (bit-exact). An in-place conversion keeps the v2.1 original as
`<REPO>_v21` beside it. A v2.0 dataset is named with the LeRobot step that upgrades it to v2.1 first.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import shutil
import sys

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub / lerobot are imported: never touch the hub

import numpy as np
import tyro

from openpi.training import dataset_version

logger = logging.getLogger("convert_dataset")
V21_FILES = ("meta/info.json", "meta/episodes.jsonl", "meta/tasks.jsonl", "meta/episodes_stats.jsonl")


@dataclasses.dataclass
class Args:
    repo: str
    """Dataset name under HF_LEROBOT_HOME (make targets: ./datasets); the converted dataset goes there."""
    src: pathlib.Path | None = None
    """The v2.1 dataset folder (default: HF_LEROBOT_HOME/<repo> itself, converted in place)."""


def _state_action_keys(features: dict) -> list[str]:
    return sorted(k for k in features if k.startswith(("observation.state", "action")))


def _v21_columns(src: pathlib.Path, info: dict, keys: list[str]) -> tuple[int, dict[str, np.ndarray]]:
    """(frame count, {key: [N, D] values}) read from the v2.1 per-episode parquet files, in episode order."""
    import pyarrow.parquet as pq

    episodes = [json.loads(line) for line in (src / "meta" / "episodes.jsonl").read_text().splitlines() if line]
    episodes.sort(key=lambda e: e["episode_index"])
    cols = {k: [] for k in keys}
    frames = 0
    for ep in episodes:
        i = ep["episode_index"]
        path = src / info["data_path"].format(episode_chunk=i // info["chunks_size"], episode_index=i)
        table = pq.read_table(path, columns=keys)
        if table.num_rows != ep["length"]:
            raise ValueError(f"{path}: {table.num_rows} rows, meta/episodes.jsonl says length {ep['length']}")
        frames += table.num_rows
        for k in keys:
            cols[k].append(np.asarray(table.column(k).to_pylist(), dtype=np.float64))
    return frames, {k: np.concatenate(v) for k, v in cols.items()}


def _features_signature(features: dict) -> dict:
    return {k: (f["dtype"], tuple(f["shape"])) for k, f in features.items()}


def verify(src: pathlib.Path, converted: pathlib.Path, repo: str) -> int:
    """Raise unless the converted dataset loads and matches the source; returns its frame count."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    src_info = json.loads((src / "meta" / "info.json").read_text())
    keys = _state_action_keys(src_info["features"])
    frames, src_cols = _v21_columns(src, src_info, keys)
    if frames != src_info["total_frames"]:
        raise ValueError(f"{src}: parquet files hold {frames} frames, meta/info.json says {src_info['total_frames']}")
    ds = LeRobotDataset(repo, root=converted)
    problems = []
    if ds.meta.info["codebase_version"] != "v3.0":
        problems.append(f"codebase_version {ds.meta.info['codebase_version']!r}")
    if ds.num_frames != frames or len(ds.hf_dataset) != frames:
        problems.append(f"{ds.num_frames} frames ({len(ds.hf_dataset)} rows), the source has {frames}")
    if _features_signature(ds.meta.features) != _features_signature(src_info["features"]):
        problems.append(
            f"features {_features_signature(ds.meta.features)} != {_features_signature(src_info['features'])}"
        )
    for k in keys:
        got = np.asarray(ds.hf_dataset.with_format("numpy")[k], dtype=np.float64)
        if got.shape != src_cols[k].shape or not np.array_equal(got, src_cols[k]):
            problems.append(f"column {k!r} differs from the source")
    for index in (0, frames - 1):  # decodes the videos at both ends
        item = ds[index]
        for key in ds.meta.video_keys:
            if tuple(item[key].shape)[-2:] != tuple(ds.meta.features[key]["shape"][:2]):
                problems.append(f"frame {index} of {key}: shape {tuple(item[key].shape)}")
    if problems:
        raise ValueError(f"converted {repo} does not match {src}: " + "; ".join(problems))
    return frames


def convert(repo: str, src: pathlib.Path | None = None) -> pathlib.Path:
    """Convert; returns the v3.0 dataset's path (HF_LEROBOT_HOME/<repo>)."""
    from lerobot.datasets.v30 import convert_dataset_v21_to_v30 as lerobot_v30

    home = dataset_version.lerobot_home()
    target = home / repo
    src = (pathlib.Path(src) if src is not None else target).resolve()
    version = dataset_version.read_version(src)
    if version is None:
        raise FileNotFoundError(f"{src}/meta/info.json not found: SRC must be a LeRobot dataset folder")
    if version.startswith("v3."):
        if src == target.resolve():
            print(f"{target} is already {version}; nothing to convert")
            return target
        raise ValueError(f"{src} is already {version}: copy it to {target} instead of converting")
    if version != "v2.1":
        raise ValueError(dataset_version.upgrade_hint(version, repo, src))
    missing = [f for f in V21_FILES if not (src / f).exists()]
    if missing:
        raise FileNotFoundError(f"{src} is v2.1 but lacks {missing} (LeRobot's converter reads them)")
    in_place = src == target.resolve()
    if not in_place and target.exists():
        raise FileExistsError(f"{target} exists; move it away or convert in place (make convert-dataset REPO={repo})")
    backup = target.parent / f"{target.name}_v21"
    if in_place and backup.exists():
        raise FileExistsError(f"{backup} exists (an earlier conversion's backup of the v2.1 original): move it away")

    staging = home / f".convert-{repo.replace('/', '--')}-{os.getpid()}"
    try:
        shutil.copytree(src, staging / repo, symlinks=False)
        print(f"Converting a copy of {src} ({version}) in {staging} with LeRobot's v2.1 -> v3.0 converter")
        lerobot_v30.convert_dataset(repo_id=repo, root=staging, push_to_hub=False, force_conversion=True)
        frames = verify(src, staging / repo, repo)
        target.parent.mkdir(parents=True, exist_ok=True)
        if in_place:
            os.rename(target, backup)
        os.rename(staging / repo, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    kept = f"; the v2.1 original is kept at {backup}" if in_place else ""
    print(f"Converted {repo} to v3.0 at {target}: {frames} frames, features and state/action columns equal{kept}")
    return target


def main(args: Args) -> None:
    convert(args.repo, args.src)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    main(tyro.cli(Args))
