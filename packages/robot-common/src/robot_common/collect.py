"""Teleoperation recording loop shared by both arms: read a leader (master arm, hand guiding, or a scripted
source), command the follower, and record {state, action, base image, wrist image} at a fixed rate.

The operator drives the session with `robot_common.controls` (keys or automatic); every finished episode is
on disk before the next starts (`robot_common.recorder`), so a crash loses at most the episode being recorded.

The loop does no encoding or disk work (the recorder queues the frames for its writer threads and finishes the
episode after the loop) and checks its own clock (`robot_common.timing`): an episode taken off the dataset's rate
is kept aside as rejected, not merged, unless `keep_off_rate`."""

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
from robot_common.timing import CAPTURE_TIME
from robot_common.timing import measure

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
    keep_off_rate: bool = False,
    max_rejected_in_a_row: int = 3,
) -> CollectStats:
    """Record until `num_episodes` episodes are kept (or `q` / Ctrl-C), then merge them into the dataset.

    Per step: target = leader(t); frame = vectors(target) (state/action features, read BEFORE the command)
    + one image per camera (image_keys maps camera name -> feature); then the follower is commanded. An episode
    ends after `episode_steps` steps or earlier on Enter/space (keys are read before each step: frames recorded
    before the key press are kept).

    `next_state_actions` (kinesthetic teaching, where nothing is commanded): {action key: state key}; the action of
    frame t is the state of frame t+1 (where the hand took the arm), the last frame's action is its own state.
    Ctrl-C ends the session like `q`: finished episodes are kept, the current one is dropped.

    Timing (`realtime`: paced at `fps`): an episode more than 5 % off `fps` or with more than 5 % overrun steps is
    saved as rejected (kept aside, not merged, not counted) unless `keep_off_rate`; in auto mode the session
    stops after `max_rejected_in_a_row` rejected episodes in a row (the machine does not keep the rate).
    `realtime=False` (tests, replay) runs unpaced and checks no rate."""
    controls = controls if controls is not None else Controls("auto")
    progress = progress if progress is not None else Progress()
    stats = CollectStats(target_fps=fps, num_episodes=num_episodes)
    rec = _Episode(robot, cameras, leader, recorder, task, episode_steps, fps, vectors, image_keys, realtime,
                   next_state_actions, controls, progress, stats, keep_off_rate)  # fmt: skip
    try:
        with controls:
            rerecord = False
            while True:
                done = recorder.episodes >= num_episodes
                if done and controls.mode != "keys":
                    break
                last = stats.attempts[-1] if stats.attempts else None
                if controls.mode != "keys" and _rejected_in_a_row(stats) >= max_rejected_in_a_row:
                    progress.note(
                        f"stopping: {max_rejected_in_a_row} episodes in a row were taken off the {fps:g} fps rate "
                        f"({last.timing.summary()}); this machine does not keep the rate with this setup: lower "
                        "--fps or --cameras.height/--cameras.width, stop other programs, or pass --keep-off-rate"
                    )
                    break
                if not rerecord:
                    if controls.mode == "keys":  # keys: the last episode can still be discarded before the end
                        if last is not None and last.rejected:
                            head = (
                                f"episode {recorder.episodes + 1}/{num_episodes} was REJECTED for its timing (kept "
                                "aside, not merged): Enter/space record it again, d delete it, q quit"
                            )
                        elif done:
                            head = f"all {num_episodes} episodes recorded: Enter/space or q finish"
                        else:
                            head = f"episode {recorder.episodes + 1}/{num_episodes}: Enter/space start, q quit"
                        if recorder.episodes and not (last is not None and last.rejected):
                            head += ", d discard the last one, r re-record it"
                        progress.note(head)
                    ev = controls.wait_start()
                    if ev is Event.QUIT or (done and ev is Event.START):
                        break
                    if ev in (Event.DISCARD, Event.RERECORD):
                        kind = recorder.discard_last()
                        if kind:
                            _mark_last_discarded(stats)
                            progress.note(
                                "deleted the rejected episode"
                                if kind == "rejected"
                                else f"discarded episode {recorder.episodes + 1}"
                            )
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
        if stats.episodes_rejected and hasattr(recorder, "rejected_note"):
            progress.note(recorder.rejected_note())
    return stats


def _mark_last_discarded(stats: CollectStats) -> None:
    for a in reversed(stats.attempts):
        if a.kept or a.rejected:
            a.kept = a.rejected = False
            return


def _rejected_in_a_row(stats: CollectStats) -> int:
    n = 0
    for a in reversed(stats.attempts):
        if not a.rejected:
            break
        n += 1
    return n


class _Episode:
    """One recording attempt: the timed step loop with key handling and the status line."""

    def __init__(self, robot, cameras, leader, recorder, task, steps, fps, vectors, image_keys, realtime,
                 next_state_actions, controls, progress, stats, keep_off_rate=False):  # fmt: skip
        self.robot, self.cameras, self.leader, self.recorder = robot, cameras, leader, recorder
        self.task, self.steps, self.fps, self.vectors, self.image_keys = task, steps, fps, vectors, image_keys
        self.realtime, self.nsa, self.controls, self.progress = realtime, next_state_actions, controls, progress
        self.stats, self.keep_off_rate = stats, keep_off_rate

    def run(self) -> Event | None:
        """Record one attempt; returns the event that ended it early (None: it ran its full length)."""
        period = 1.0 / self.fps
        if hasattr(self.recorder, "start_episode"):
            self.recorder.start_episode()  # the episode's files are created before the loop, not in its first step
        stamp = CAPTURE_TIME in getattr(self.recorder, "features", {})
        captures, work, t0 = [], [], None
        start = time.monotonic()
        deadline, overruns, pending, ended_by = start, 0, None, None
        n = self.recorder.episodes + 1
        for t in range(self.steps):
            step_start = time.monotonic()
            ev = self.controls.poll()
            if ev is not None:
                ended_by = ev
                break
            target = np.asarray(self.leader(t), dtype=np.float64)
            t_state = time.monotonic()
            frame = dict(self.vectors(target))
            images = grab({cam: self.cameras[cam] for cam in self.image_keys})  # concurrent: one instant per step
            for cam, key in self.image_keys.items():
                frame[key] = images[cam]
            ts = getattr(images, "timestamps", None)
            captures.append(float(np.mean(list(ts.values()))) if ts else t_state)  # the frame's time: its images
            t0 = t_state if t0 is None else t0
            if stamp:
                frame[CAPTURE_TIME] = np.array([t_state - t0, captures[-1] - t0])
            self.robot.command(target)
            if self.nsa:
                if pending is not None:
                    self.recorder.add_frame(_with_actions(pending, frame, self.nsa), self.task)
                pending = frame
            else:
                self.recorder.add_frame(frame, self.task)  # queues the images: no encoding or disk work here
            elapsed = time.monotonic() - start
            backlog = getattr(self.recorder, "backlog", 0)
            self.progress.status(
                f"ep {n}/{self.stats.num_episodes}  {t + 1}/{self.steps} frames  "
                f"{(t + 1) / elapsed if elapsed > 0 else 0:5.1f}/{self.fps:g} fps  {overruns} overruns  "
                + (f"writer backlog {backlog}  " if backlog else "")
                + _HELP[self.controls.mode]
            )
            now = time.monotonic()
            work.append(now - step_start)
            deadline += period
            late = now - deadline
            if late > 0:
                overruns += 1
                if late > period:  # more than a step behind: restart the schedule instead of rushing
                    deadline = now
            elif self.realtime:
                time.sleep(-late)
        if pending is not None:
            self.recorder.add_frame(_with_actions(pending, pending, self.nsa), self.task)
        seconds = time.monotonic() - start
        frames = self.recorder.frames
        writer = self.recorder.writer_stats() if hasattr(self.recorder, "writer_stats") else None
        timing = measure(
            captures, self.fps, overrun_steps=overruns, work_s=work, paced=self.realtime, writer=writer, t0_monotonic=t0
        )
        keep = ended_by in (None, Event.STOP) and frames > 0
        rejected = keep and timing.off_rate and not self.keep_off_rate
        timing.kept_anyway = keep and timing.off_rate and self.keep_off_rate
        if keep:
            self.recorder.save_episode(timing=timing)  # after the loop: the writer's backlog, video, fsync
        else:
            self.recorder.discard_episode()
        self.stats.attempts.append(
            EpisodeStats(frames, seconds, overruns, keep and not rejected, timing=timing, rejected=rejected)
        )
        if rejected:
            what = "REJECTED, kept aside and not merged (" + "; ".join(timing.rejected) + ")"
        elif keep:
            what = "saved" + (" although off rate (--keep-off-rate)" if timing.kept_anyway else "")
        else:
            what = "dropped (quit)" if ended_by is Event.QUIT else "discarded"
        self.progress.note(f"episode {n}/{self.stats.num_episodes} {what}: {frames} frames, {timing.summary()}")
        return ended_by


def _with_actions(frame: dict, source: dict, next_state_actions: dict[str, str]) -> dict:
    return {**frame, **{a: np.array(source[st], copy=True) for a, st in next_state_actions.items()}}
