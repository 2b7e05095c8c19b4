"""Teleoperation recording loop shared by both arms: read a leader (master arm, hand guiding, or a scripted
source), command the follower, and record {state, action, base image, wrist image} at a fixed rate."""

from __future__ import annotations

from collections.abc import Callable
import logging
import time

import numpy as np

from robot_common.interface import Camera
from robot_common.interface import Robot
from robot_common.recorder import EpisodeRecorder

logger = logging.getLogger("robot_common.collect")


def record_episodes(
    robot: Robot,
    cameras: dict[str, Camera],
    leader: Callable[[int], np.ndarray],
    recorder: EpisodeRecorder,
    *,
    task: str,
    num_episodes: int,
    episode_steps: int,
    fps: float,
    vectors: Callable[[np.ndarray], dict],
    image_keys: dict[str, str],
    realtime: bool = True,
    next_state_actions: dict[str, str] | None = None,
) -> int:
    """Per step: target = leader(t); frame = vectors(target) (state/action features, read BEFORE the command)
    + one image per camera (image_keys maps camera name -> feature); then the follower is commanded.

    `next_state_actions` (kinesthetic teaching, where nothing is commanded): {action key: state key}; the action of
    frame t is the state of frame t+1 (where the hand took the arm), the last frame's action is its own state.
    Ctrl-C ends the session: finished episodes are kept, the current one is dropped."""
    period = 1.0 / fps
    try:
        for ep in range(num_episodes):
            logger.info("episode %d/%d: recording %d steps", ep + 1, num_episodes, episode_steps)
            pending = None
            for t in range(episode_steps):
                tick = time.monotonic()
                target = np.asarray(leader(t), dtype=np.float64)
                frame = dict(vectors(target))
                for cam, key in image_keys.items():
                    frame[key] = cameras[cam].read()
                robot.command(target)
                if next_state_actions:
                    if pending is not None:
                        recorder.add_frame(_with_actions(pending, frame, next_state_actions), task)
                    pending = frame
                else:
                    recorder.add_frame(frame, task)
                if realtime:
                    time.sleep(max(0.0, period - (time.monotonic() - tick)))
            if pending is not None:
                recorder.add_frame(_with_actions(pending, pending, next_state_actions), task)
            recorder.save_episode()
    except KeyboardInterrupt:
        logger.warning("interrupted: keeping %d finished episodes", recorder.episodes)
    finally:
        recorder.close()
    return recorder.episodes


def _with_actions(frame: dict, source: dict, next_state_actions: dict[str, str]) -> dict:
    return {**frame, **{a: np.array(source[st], copy=True) for a, st in next_state_actions.items()}}
