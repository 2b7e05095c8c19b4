"""Timing integrity of a recorded episode: was it taken at the rate its dataset says?

A dataset stamped at 30 fps but taken at 8 fps teaches the policy motions 3.6x too fast, so every episode records
its own clock: monotonic capture times per frame (the `capture_time` column: `time.monotonic()` seconds when the
step's state was read and its camera frames taken), and per episode the achieved rate, the jitter of the frame intervals, the loop work
per step and the overrun steps (steps whose work ran past their deadline). An episode whose achieved rate is more
than `RATE_TOLERANCE` off the dataset's fps, or with more than `MAX_OVERRUN_FRACTION` overrun steps, is rejected:
the recorders keep it aside (not merged into the dataset) unless told to keep it (`--keep-off-rate`).

numpy only: also used by the Flexiv robot PC's venv (no lerobot there).
"""

from __future__ import annotations

import dataclasses

import numpy as np

CAPTURE_TIME = "capture_time"
"""Per-frame column [2]: when the step's robot state was read and when its camera frames were taken (mean over
the cameras), in seconds since the episode's first state read; that instant is `t0_monotonic` in the episode's
timing (absolute = t0_monotonic + capture_time, on the recording machine's time.monotonic() clock). Relative, so
that it stays exact when LeRobot's loader turns it into float32 (it is float64 on disk). Two values, not one:
LeRobot 0.4.4 cannot write a (1,)-shaped array feature with numpy 2, and the state/camera offset is worth having."""

RATE_TOLERANCE = 0.05
"""Reject an episode whose achieved rate is more than 5 % off the dataset's fps."""
MAX_OVERRUN_FRACTION = 0.05
"""Reject an episode with more than 5 % overrun steps."""


def capture_time_feature() -> dict:
    """The `capture_time` feature (float64: monotonic seconds keep sub-microsecond resolution)."""
    return {"dtype": "float64", "shape": (2,), "names": ["state_s", "images_s"]}


@dataclasses.dataclass
class EpisodeTiming:
    """How one episode was actually taken. All times in ms unless named _s."""

    fps: float
    """The dataset's (target) rate."""
    frames: int
    achieved_fps: float | None
    """1 / (least-squares slope of the capture times over the frame index): the rate the frames were taken at,
    not thrown off by one late first or last frame as (frames - 1) / (last - first) would be in a short episode;
    None with fewer than 2 frames."""
    duration_s: float
    t0_monotonic: float | None
    """time.monotonic() of the episode's first state read: the zero of its `capture_time` column."""
    interval_ms_mean: float | None
    jitter_ms_std: float | None
    """Standard deviation of the frame intervals."""
    jitter_ms_p99: float | None
    """99th percentile of |interval - period|."""
    jitter_ms_max: float | None
    overrun_steps: int
    steps: int
    """Loop steps (frames taken; equal to frames except in kinesthetic teaching's one-step delay, also equal)."""
    work_ms_p50: float | None = None
    """Loop work per step, without the wait for the next period."""
    work_ms_max: float | None = None
    writer_blocked_steps: int = 0
    """Steps in which the recorder's bounded queue was full and the loop waited for the writer (backpressure)."""
    writer_blocked_ms: float = 0.0
    writer_max_backlog: int = 0
    """Most frames (per camera) waiting in the writer's queue at once."""
    paced: bool = True
    """False: the loop was not paced at the rate (tests, replay); the rate is not checked."""
    rejected: list[str] = dataclasses.field(default_factory=list)
    """Why the episode is off rate (empty: it is on rate)."""
    kept_anyway: bool = False
    """Off rate but kept (--keep-off-rate)."""

    @property
    def overrun_fraction(self) -> float:
        return self.overrun_steps / self.steps if self.steps else 0.0

    @property
    def off_rate(self) -> bool:
        return bool(self.rejected)

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "overrun_fraction": self.overrun_fraction}

    @classmethod
    def from_json(cls, d: dict) -> EpisodeTiming:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def summary(self) -> str:
        rate = f"{self.achieved_fps:.1f}" if self.achieved_fps is not None else "-"
        out = f"{rate}/{self.fps:g} fps, {self.overrun_steps}/{self.steps} overrun steps"
        if self.jitter_ms_p99 is not None:
            out += f", jitter p99 {self.jitter_ms_p99:.1f} ms"
        if self.work_ms_p50 is not None:
            out += f", loop work p50 {self.work_ms_p50:.1f} ms of {1e3 / self.fps:.1f}"
        if self.writer_blocked_steps:
            out += (
                f", writer backlog full in {self.writer_blocked_steps} steps ({self.writer_blocked_ms:.0f} ms waited)"
            )
        return out


def measure(
    capture_times,
    fps: float,
    *,
    overrun_steps: int = 0,
    work_s=None,
    paced: bool = True,
    rate_tolerance: float = RATE_TOLERANCE,
    max_overrun_fraction: float = MAX_OVERRUN_FRACTION,
    writer: dict | None = None,
    t0_monotonic: float | None = None,
) -> EpisodeTiming:
    """Timing of an episode from its capture times (s) and the loop's overrun count; `rejected` lists the rules it
    breaks (never when `paced` is False)."""
    t = np.asarray(capture_times, np.float64).reshape(-1)
    n = len(t)
    period_ms = 1e3 / fps
    iv = np.diff(t) * 1e3
    work = np.asarray(work_s if work_s is not None else [], np.float64) * 1e3
    dev = np.abs(iv - period_ms)
    slope = None
    if n >= 2:
        k = np.arange(n) - (n - 1) / 2
        slope = float(np.dot(k, t - t.mean()) / np.dot(k, k))
    timing = EpisodeTiming(
        fps=float(fps),
        frames=n,
        achieved_fps=1.0 / slope if slope is not None and slope > 0 else None,
        duration_s=float(t[-1] - t[0]) if n >= 2 else 0.0,
        t0_monotonic=t0_monotonic,
        interval_ms_mean=float(iv.mean()) if len(iv) else None,
        jitter_ms_std=float(iv.std()) if len(iv) else None,
        jitter_ms_p99=float(np.percentile(dev, 99)) if len(dev) else None,
        jitter_ms_max=float(dev.max()) if len(dev) else None,
        overrun_steps=int(overrun_steps),
        steps=max(n, len(work)),
        work_ms_p50=float(np.median(work)) if len(work) else None,
        work_ms_max=float(work.max()) if len(work) else None,
        paced=paced,
        **(writer or {}),
    )
    if paced:
        if timing.achieved_fps is not None and abs(timing.achieved_fps / fps - 1) > rate_tolerance:
            timing.rejected.append(
                f"achieved {timing.achieved_fps:.1f} fps, more than {rate_tolerance:.0%} off the dataset's {fps:g}"
            )
        if timing.overrun_fraction > max_overrun_fraction:
            timing.rejected.append(
                f"{timing.overrun_steps}/{timing.steps} steps overran (more than {max_overrun_fraction:.0%})"
            )
    return timing
