"""Record episodes into a LeRobot v3 dataset, atomically.

The dataset is written into `<home>/.<repo_id>.partial` and renamed to `<home>/<repo_id>` when the session ends,
also on Ctrl-C: every finished episode is kept, the unfinished one is discarded. An existing dataset is never
overwritten unless asked.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil

import numpy as np

logger = logging.getLogger("robot_common.recorder")


def lerobot_home() -> pathlib.Path:
    return pathlib.Path(os.environ.get("HF_LEROBOT_HOME", "datasets")).expanduser()


def image_feature(shape) -> dict:
    return {"dtype": "video", "shape": tuple(shape), "names": ["height", "width", "channel"]}


def vector_feature(dim: int, names=None) -> dict:
    return {"dtype": "float32", "shape": (dim,), "names": names}


class EpisodeRecorder:
    def __init__(
        self,
        repo_id: str,
        *,
        fps: int,
        features: dict,
        robot_type: str,
        overwrite: bool = False,
        root: pathlib.Path | None = None,
    ):
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        home = pathlib.Path(root) if root else lerobot_home()
        self.final = home / repo_id
        if self.final.exists() and not overwrite:
            raise FileExistsError(f"{self.final} exists; pass --overwrite to replace it or choose another --repo-id")
        self._tmp = home / f".{repo_id}.partial"
        shutil.rmtree(self._tmp, ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        self._features = features
        self._ds = LeRobotDataset.create(
            repo_id, fps=fps, features=features, root=self._tmp, robot_type=robot_type, use_videos=True, vcodec="h264"
        )
        self.episodes = 0
        self._frames = 0
        self._closed = False

    def add_frame(self, frame: dict, task: str) -> None:
        missing = set(self._features) - set(frame)
        if missing:
            raise KeyError(f"frame is missing features {sorted(missing)}")
        self._ds.add_frame(
            {
                **{
                    k: (np.asarray(v, np.float32) if self._features[k]["dtype"] == "float32" else v)
                    for k, v in frame.items()
                },
                "task": task,
            }
        )
        self._frames += 1

    def save_episode(self) -> None:
        if self._frames == 0:
            return
        self._ds.save_episode()
        self.episodes += 1
        self._frames = 0
        logger.info("saved episode %d", self.episodes)

    def discard_episode(self) -> None:
        if self._frames:
            self._ds.clear_episode_buffer()
            self._frames = 0

    def close(self) -> pathlib.Path | None:
        """Finalize and move into place (drops an unfinished episode). Returns the dataset dir, or None if empty."""
        if self._closed:
            return self.final if self.episodes else None
        self._closed = True
        self.discard_episode()
        if self.episodes == 0:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return None
        self._ds.finalize()
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self._tmp, self.final)
        logger.info("dataset with %d episodes at %s", self.episodes, self.final)
        return self.final
