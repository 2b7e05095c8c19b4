"""Small real LeRobot datasets in the formats of every registry config (ALOHA, Piper, Flexiv), and their norm stats.

One dataset is written per format; the other names the registry uses for that format are symlinks to it.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from openpi.shared import download
from openpi.shared import normalize
from openpi.training import config as _config
from openpi.training import norm_stats as _norm_stats

HW = (16, 16)
# (features, fps, robot type) per format; the names each format is known by in configs_registry.py
FORMATS = {
    "aloha": ("aloha_sim_transfer_small", 50, "aloha"),
    "piper": ("piper_lerobot_data", 30, "piper"),
    "flexiv": ("flexiv_lerobot_data", 20, "flexiv"),
}


def _features(fmt: str) -> dict:
    if fmt == "aloha":
        from aloha_sim.generate import aloha_features

        return aloha_features(HW, [f"cube_{c}" for c in ("x", "y", "z", "qw", "qx", "qy", "qz")])
    if fmt == "piper":
        from robot_piper.common import features

        return features(HW)
    from robot_flexiv.common import features

    return features(HW)


def write_dataset(home: pathlib.Path, fmt: str, episodes=(5, 4)) -> pathlib.Path:
    """A real LeRobot v3.0 dataset (h264 videos) of `fmt` under `home`; returns its root."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    repo_id, fps, robot = FORMATS[fmt]
    feats = _features(fmt)
    ds = LeRobotDataset.create(
        repo_id, fps=fps, features=feats, root=home / repo_id, robot_type=robot, use_videos=True, vcodec="h264"
    )
    rng = np.random.default_rng(0)
    for length in episodes:
        for _ in range(length):
            frame = {"task": "pick up the cube"}
            for key, f in feats.items():
                if f["dtype"] == "video":
                    frame[key] = rng.integers(0, 255, f["shape"], dtype=np.uint8)
                else:
                    frame[key] = rng.normal(size=f["shape"]).astype(np.float32) * 0.3
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return home / repo_id


def _format_of(config) -> str:
    data = config.data
    if isinstance(data, _config.LeRobotAlohaDataConfig):
        return "aloha"
    return data.robot


def real_data_configs() -> list[str]:
    return sorted(n for n, c in _config.list_configs().items() if not isinstance(c.data, _config.FakeDataConfig))


def prepare(home: pathlib.Path, assets: pathlib.Path) -> None:
    """Write one dataset per format, link every other registry name to it, and compute every config's norm stats
    (the fast parquet path of `make norm-stats`) into `assets`."""
    roots = {fmt: write_dataset(home, fmt) for fmt in FORMATS}
    for name in real_data_configs():
        cfg = _config.get_config(name)
        link = home / cfg.data.repo_id
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(roots[_format_of(cfg)], target_is_directory=True)
        remote = cfg.data.assets.assets_dir  # zero-shot configs read the base checkpoint's assets (a download)
        local = dataclasses.replace(cfg.data, assets=dataclasses.replace(cfg.data.assets, assets_dir=None))
        cfg = for_test(dataclasses.replace(cfg, data=local), assets)
        data_cfg, stats, _ = _norm_stats.compute(cfg)
        if remote:  # where a cached download of <remote>/<asset_id> lives in OPENPI_DATA_HOME
            normalize.save(download.cache_path(f"{remote}/{data_cfg.asset_id}"), stats)
        else:
            normalize.save(cfg.assets_dirs / data_cfg.asset_id, stats)


def for_test(cfg, assets: pathlib.Path, **overrides):
    """`cfg` with a small batch, no worker processes and the test's assets dir (what the CLI flags would set)."""
    fields = {"batch_size": 2, "num_workers": 0, "assets_base_dir": str(assets), "wandb_enabled": False}
    return dataclasses.replace(cfg, **{**fields, **overrides})
