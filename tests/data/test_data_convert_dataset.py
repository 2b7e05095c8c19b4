"""`make convert-dataset`: a LeRobot v2.1 dataset written here (the layout the seed's fork records and LeRobot's
converter reads) becomes v3.0 through LeRobot's converter, offline, staged and verified; old datasets elsewhere in the
code name the command."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import numpy as np
from PIL import Image
import pytest

from openpi.training import dataset_version

FPS = 10
HW = (24, 32)
EPISODES = (6, 4)
FEATURES = {
    "observation.images.base": {
        "dtype": "video",
        "shape": [HW[0], HW[1], 3],
        "names": ["height", "width", "channel"],
        "info": {
            "video.fps": float(FPS),
            "video.height": HW[0],
            "video.width": HW[1],
            "video.channels": 3,
            "video.codec": "h264",
            "video.pix_fmt": "yuv420p",
            "video.is_depth_map": False,
            "has_audio": False,
        },
    },
    "observation.state": {"dtype": "float32", "shape": [7], "names": None},
    "action": {"dtype": "float32", "shape": [7], "names": None},
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


def _stats(values: np.ndarray) -> dict:
    v = values.reshape(len(values), -1).astype(np.float64)
    return {
        "min": v.min(0).tolist(),
        "max": v.max(0).tolist(),
        "mean": v.mean(0).tolist(),
        "std": v.std(0).tolist(),
        "count": [len(v)],
    }


def write_v21(root: pathlib.Path, version: str = "v2.1") -> dict[str, np.ndarray]:
    """A v2.1 dataset at `root` (per-episode parquet and mp4, jsonl metadata); returns its state/action columns."""
    from lerobot.datasets.video_utils import encode_video_frames
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    (root / "meta").mkdir(parents=True)
    episodes, stats_lines, all_state, all_action, index = [], [], [], [], 0
    for ep, length in enumerate(EPISODES):
        state = rng.normal(size=(length, 7)).astype(np.float32)
        action = rng.normal(size=(length, 7)).astype(np.float32)
        frames = rng.integers(0, 255, (length, *HW, 3), dtype=np.uint8)
        table = {
            "observation.state": state.tolist(),
            "action": action.tolist(),
            "timestamp": (np.arange(length) / FPS).astype(np.float32),
            "frame_index": np.arange(length),
            "episode_index": np.full(length, ep),
            "index": np.arange(index, index + length),
            "task_index": np.zeros(length, np.int64),
        }
        data = root / f"data/chunk-000/episode_{ep:06d}.parquet"
        data.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(table), data)
        png_dir = root / f"png_{ep}"
        png_dir.mkdir()
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(png_dir / f"frame-{i:06d}.png")
        video = root / f"videos/chunk-000/observation.images.base/episode_{ep:06d}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        encode_video_frames(png_dir, video, FPS, vcodec="h264", g=2, crf=30)
        for p in png_dir.iterdir():
            p.unlink()
        png_dir.rmdir()
        episodes.append({"episode_index": ep, "tasks": ["pick up the cube"], "length": length})
        stats = {k: _stats(np.asarray(v)) for k, v in table.items()}
        img = frames.astype(np.float64) / 255.0
        stats["observation.images.base"] = {
            "min": img.min((0, 1, 2)).reshape(3, 1, 1).tolist(),
            "max": img.max((0, 1, 2)).reshape(3, 1, 1).tolist(),
            "mean": img.mean((0, 1, 2)).reshape(3, 1, 1).tolist(),
            "std": img.std((0, 1, 2)).reshape(3, 1, 1).tolist(),
            "count": [length],
        }
        stats_lines.append({"episode_index": ep, "stats": stats})
        all_state.append(state)
        all_action.append(action)
        index += length
    info = {
        "codebase_version": version,
        "robot_type": "piper",
        "total_episodes": len(EPISODES),
        "total_frames": index,
        "total_tasks": 1,
        "total_videos": len(EPISODES),
        "total_chunks": 1,
        "chunks_size": 1000,
        "fps": FPS,
        "splits": {"train": f"0:{len(EPISODES)}"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": FEATURES,
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    (root / "meta" / "episodes.jsonl").write_text("".join(json.dumps(e) + "\n" for e in episodes))
    (root / "meta" / "tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "pick up the cube"}) + "\n")
    if version == "v2.1":
        (root / "meta" / "episodes_stats.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stats_lines))
    return {"observation.state": np.concatenate(all_state), "action": np.concatenate(all_action)}


def _make(repo_root, home, *args):
    env = {**os.environ, "HF_LEROBOT_HOME": str(home), "HF_ENDPOINT": "http://127.0.0.1:9"}  # any hub call fails
    return subprocess.run(
        ["make", "-s", "convert-dataset", *args], cwd=repo_root, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow  # `make convert-dataset` in a fresh process (imports LeRobot) and a second conversion: ~60 s here
def test_convert_v21_in_place_and_from_src(repo_root, lerobot_home, tmp_path, monkeypatch):
    import lerobot.utils.constants as lc

    monkeypatch.setattr(lc, "HF_LEROBOT_HOME", lerobot_home)
    columns = write_v21(lerobot_home / "piper_old")
    before = sorted(p.relative_to(lerobot_home / "piper_old") for p in (lerobot_home / "piper_old").rglob("*"))
    with pytest.raises(dataset_version.OldDatasetVersionError, match="make convert-dataset REPO=piper_old"):
        dataset_version.check_local("piper_old")

    proc = _make(repo_root, lerobot_home, "REPO=piper_old")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Converted piper_old to v3.0" in proc.stdout and "10 frames" in proc.stdout
    assert dataset_version.check_local("piper_old") == lerobot_home / "piper_old"
    backup = lerobot_home / "piper_old_v21"  # the original, untouched
    assert sorted(p.relative_to(backup) for p in backup.rglob("*")) == before
    assert not list(lerobot_home.glob(".convert-*"))  # no staging left behind

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("piper_old", root=lerobot_home / "piper_old")
    assert ds.meta.info["codebase_version"] == "v3.0" and ds.num_episodes == 2 and len(ds) == 10
    for key, values in columns.items():
        np.testing.assert_array_equal(np.asarray(ds.hf_dataset.with_format("numpy")[key]), values)
    assert tuple(ds[9]["observation.images.base"].shape) == (3, *HW)

    # SRC elsewhere -> a new name under HF_LEROBOT_HOME (in this process); the source folder is left as it was
    write_v21(tmp_path / "elsewhere")
    convert = _script(repo_root, monkeypatch).convert
    assert convert("piper_new", tmp_path / "elsewhere") == lerobot_home / "piper_new"
    assert dataset_version.read_version(lerobot_home / "piper_new") == "v3.0"
    assert dataset_version.read_version(tmp_path / "elsewhere") == "v2.1"
    with pytest.raises(FileExistsError, match="piper_new exists"):  # never over an existing dataset
        convert("piper_new", tmp_path / "elsewhere")


def test_v20_and_usage_are_named(repo_root, lerobot_home, monkeypatch):
    import lerobot.utils.constants as lc

    monkeypatch.setattr(lc, "HF_LEROBOT_HOME", lerobot_home)
    write_v21(lerobot_home / "very_old", version="v2.0")
    with pytest.raises(ValueError, match=r"convert_dataset_v20_to_v21.*make convert-dataset REPO=very_old"):
        _script(repo_root, monkeypatch).convert("very_old")
    assert dataset_version.read_version(lerobot_home / "very_old") == "v2.0"  # untouched
    with pytest.raises(dataset_version.OldDatasetVersionError, match="v2.0 -> v2.1"):
        dataset_version.check_local("very_old")
    proc = _make(repo_root, lerobot_home)
    assert proc.returncode == 2 and "usage: make convert-dataset REPO=" in proc.stderr


def _script(repo_root, monkeypatch):
    """scripts/convert_dataset.py as a module (it sets HF_HUB_OFFLINE=1; restored after the test)."""
    import importlib.util
    import sys

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = importlib.util.spec_from_file_location("convert_dataset", repo_root / "scripts" / "convert_dataset.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "convert_dataset", mod)
    spec.loader.exec_module(mod)
    return mod
