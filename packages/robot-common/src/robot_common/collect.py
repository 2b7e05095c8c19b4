"""Teleoperation recording loop shared by both arms: read a leader (master arm, hand guiding, or a scripted
source), command the follower, and record {state, action, base image, wrist image} at a fixed rate.

The operator drives the session with `robot_common.controls` (keys or automatic); every finished episode is
on disk before the next starts (`robot_common.recorder`), so a crash loses at most the episode being recorded."""

from __future__ import annotations

from collections.abc import Callable
import logging
import time

import numpy as np

from robot_common.camera_sync import grab
from robot_common.controls import CollectStats
from robot_common.controls import Controls
from robot_common.controls import EpisodeStats
from robot_common.controls import Event
from robot_common.controls import Progress
from robot_common.interface import Camera
from robot_common.interface import Robot
from robot_common.recorder import EpisodeRecorder

logger = logging.getLogger("robot_common.collect")

_HELP = {"keys": "(Enter save, d discard, r redo, q quit)", "auto": "(d discard, r redo, q quit)"}


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
    controls: Controls | None = None,
    progress: Progress | None = None,
) -> CollectStats:
    """Record until `num_episodes` episodes are kept (or `q` / Ctrl-C), then merge them into the dataset.

    Per step: target = leader(t); frame = vectors(target) (state/action features, read BEFORE the command)
    + one image per camera (image_keys maps camera name -> feature); then the follower is commanded. An episode
    ends after `episode_steps` steps or earlier on Enter/space (keys are read before each step: frames recorded
    before the key press are kept).

    `next_state_actions` (kinesthetic teaching, where nothing is commanded): {action key: state key}; the action of
    frame t is the state of frame t+1 (where the hand took the arm), the last frame's action is its own state.
    Ctrl-C ends the session like `q`: finished episodes are kept, the current one is dropped."""
    controls = controls if controls is not None else Controls("auto")
    progress = progress if progress is not None else Progress()
    stats = CollectStats(target_fps=fps, num_episodes=num_episodes)
    rec = _Episode(robot, cameras, leader, recorder, task, episode_steps, fps, vectors, image_keys, realtime,
                   next_state_actions, controls, progress, stats)  # fmt: skip
    try:
        with controls:
            rerecord = False
            while True:
                done = recorder.episodes >= num_episodes
                if done and controls.mode != "keys":
                    break
                if not rerecord:
                    if controls.mode == "keys":  # keys: the last episode can still be discarded before the end
                        head = (
                            f"all {num_episodes} episodes recorded: Enter/space or q finish"
                            if done
                            else f"episode {recorder.episodes + 1}/{num_episodes}: Enter/space start, q quit"
                        )
                        progress.note(head + (", d discard the last one, r re-record it" if recorder.episodes else ""))
                    ev = controls.wait_start()
                    if ev is Event.QUIT or (done and ev is Event.START):
                        break
                    if ev in (Event.DISCARD, Event.RERECORD):
                        if recorder.discard_last():
                            _mark_last_discarded(stats)
                            progress.note(f"discarded episode {recorder.episodes + 1}")
                        if ev is Event.DISCARD:
                            continue
                rerecord = False
                ev = rec.run()
                if ev is Event.QUIT:
                    break
                rerecord = ev is Event.RERECORD
    except KeyboardInterrupt:
        recorder.discard_episode()
        progress.note(f"interrupted: keeping {recorder.episodes} finished episodes")
    finally:
        if (recorder.episodes or recorder.recovered) and getattr(recorder, "merges_on_close", True):
            progress.note(f"merging {recorder.episodes + recorder.recovered} episodes into {recorder.final} ...")
        stats.dataset = recorder.close()
        progress.note(stats.summary() + (f" -> {stats.dataset}" if stats.dataset else ""))
    return stats


def _mark_last_discarded(stats: CollectStats) -> None:
    for a in reversed(stats.attempts):
        if a.kept:
            a.kept = False
            return


class _Episode:
    """One recording attempt: the timed step loop with key handling and the status line."""

    def __init__(self, robot, cameras, leader, recorder, task, steps, fps, vectors, image_keys, realtime,
                 next_state_actions, controls, progress, stats):  # fmt: skip
        self.robot, self.cameras, self.leader, self.recorder = robot, cameras, leader, recorder
        self.task, self.steps, self.fps, self.vectors, self.image_keys = task, steps, fps, vectors, image_keys
        self.realtime, self.nsa, self.controls, self.progress = realtime, next_state_actions, controls, progress
        self.stats = stats

    def run(self) -> Event | None:
        """Record one attempt; returns the event that ended it early (None: it ran its full length)."""
        period = 1.0 / self.fps
        start = time.monotonic()
        deadline, overruns, pending, ended_by = start, 0, None, None
        n = self.recorder.episodes + 1
        for t in range(self.steps):
            ev = self.controls.poll()
            if ev is not None:
                ended_by = ev
                break
            target = np.asarray(self.leader(t), dtype=np.float64)
            frame = dict(self.vectors(target))
            images = grab({cam: self.cameras[cam] for cam in self.image_keys})  # concurrent: one instant per step
            for cam, key in self.image_keys.items():
                frame[key] = images[cam]
            self.robot.command(target)
            if self.nsa:
                if pending is not None:
                    self.recorder.add_frame(_with_actions(pending, frame, self.nsa), self.task)
                pending = frame
            else:
                self.recorder.add_frame(frame, self.task)
            elapsed = time.monotonic() - start
            self.progress.status(
                f"ep {n}/{self.stats.num_episodes}  {t + 1}/{self.steps} frames  "
                f"{(t + 1) / elapsed if elapsed > 0 else 0:5.1f}/{self.fps:g} fps  {overruns} overruns  "
                f"{_HELP[self.controls.mode]}"
            )
            deadline += period
            late = time.monotonic() - deadline
            if late > 0:
                overruns += 1
                if late > period:  # more than a step behind: restart the schedule instead of rushing
                    deadline = time.monotonic()
            elif self.realtime:
                time.sleep(-late)
        if pending is not None:
            self.recorder.add_frame(_with_actions(pending, pending, self.nsa), self.task)
        seconds = time.monotonic() - start
        frames = self.recorder.frames
        keep = ended_by in (None, Event.STOP) and frames > 0
        if keep:
            self.recorder.save_episode()
        else:
            self.recorder.discard_episode()
        self.stats.attempts.append(EpisodeStats(frames, seconds, overruns, keep))
        what = "saved" if keep else ("dropped (quit)" if ended_by is Event.QUIT else "discarded")
        self.progress.note(
            f"episode {n}/{self.stats.num_episodes} {what}: {frames} frames, "
            f"{frames / seconds if seconds > 0 else 0:.1f}/{self.fps:g} fps, {overruns} overruns"
        )
        return ended_by


def _with_actions(frame: dict, source: dict, next_state_actions: dict[str, str]) -> dict:
    return {**frame, **{a: np.array(source[st], copy=True) for a, st in next_state_actions.items()}}
