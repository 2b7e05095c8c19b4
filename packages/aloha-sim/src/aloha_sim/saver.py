"""Runtime subscriber that writes each episode's top-camera frames to an mp4 (atomically)."""

from __future__ import annotations

import logging
import os
import pathlib

import numpy as np

try:
    from openpi_client.runtime.subscriber import Subscriber as _SubscriberBase
except ImportError:  # pragma: no cover
    _SubscriberBase = object


def write_video(path: pathlib.Path, frames: list[np.ndarray], fps: int = 50) -> pathlib.Path:
    """Writes HWC uint8 frames as H.264 mp4 via a temp file + rename, so a crash never leaves a broken video."""
    import imageio.v2 as imageio

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.mp4")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=1, quality=7) as writer:
        for f in frames:
            writer.append_data(np.asarray(f, dtype=np.uint8))
    os.replace(tmp, path)
    return path


class VideoSaver(_SubscriberBase):
    """Saves `out_<n>.mp4` per episode from `obs["images"]["cam_high"]` (CHW) or the env's full-size frame."""

    def __init__(self, out_dir: pathlib.Path, fps: int = 50, env=None) -> None:
        self._out_dir = pathlib.Path(out_dir)
        self._fps = fps
        self._env = env
        self._frames: list[np.ndarray] = []
        self.paths: list[pathlib.Path] = []

    def on_episode_start(self) -> None:
        self._frames = []

    def on_step(self, observation: dict, action: dict) -> None:
        frame = getattr(self._env, "last_frame", None)
        if frame is None:
            frame = np.transpose(observation["images"]["cam_high"], (1, 2, 0))
        self._frames.append(np.asarray(frame))

    def on_episode_end(self) -> None:
        if not self._frames:
            return
        path = write_video(self._out_dir / f"out_{len(self.paths)}.mp4", self._frames, self._fps)
        self.paths.append(path)
        logging.info("Saved video to %s (%d frames)", path, len(self._frames))
