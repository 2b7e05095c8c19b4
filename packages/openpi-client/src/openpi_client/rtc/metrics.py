"""What a chunk executor measures while the robot runs: inference delays, chunk-boundary smoothness, overruns."""

from __future__ import annotations

import collections
import dataclasses
import math
import threading

import numpy as np


class DelayEstimator:
    """Inference delay in control steps, estimated conservatively as the max of the last `window` measured delays
    (under-estimating it executes only softly guided actions; over-estimating costs little)."""

    def __init__(self, window: int = 10, initial_steps: int = 0):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self._recent: collections.deque[int] = collections.deque([int(initial_steps)], maxlen=window)

    def observe(self, steps: int) -> None:
        self._recent.append(int(steps))

    def estimate(self) -> int:
        return max(self._recent)

    @staticmethod
    def steps_for(seconds: float, control_hz: float) -> int:
        """A wall-clock latency rounded up to whole control steps."""
        return max(0, math.ceil(seconds * control_hz - 1e-9))


def _summary(xs) -> dict:
    if not len(xs):
        return {"n": 0}
    a = np.asarray(xs, dtype=np.float64)
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "max": float(a.max()),
    }


@dataclasses.dataclass
class ExecutionMetrics:
    """Filled by the executor from both threads (guarded by a lock); `summary()` gives the numbers to log."""

    control_hz: float
    overrun_tolerance: float = 0.5
    """A control step is an overrun when it came more than (1 + tolerance) periods after the previous one."""

    delay_steps: list[int] = dataclasses.field(default_factory=list)
    round_trip_ms: list[float] = dataclasses.field(default_factory=list)
    swap_jumps: list[float] = dataclasses.field(default_factory=list)
    swap_jerks: list[float] = dataclasses.field(default_factory=list)
    step_jumps: list[float] = dataclasses.field(default_factory=list)
    control_intervals_ms: list[float] = dataclasses.field(default_factory=list)
    overruns: int = 0
    held_steps: int = 0
    slowed_steps: int = 0
    inference_errors: int = 0
    _history: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=4))
    _last_time: float | None = None
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def record_inference(self, delay_steps: int, round_trip_s: float) -> None:
        with self._lock:
            self.delay_steps.append(int(delay_steps))
            self.round_trip_ms.append(round_trip_s * 1000)

    def record_error(self) -> None:
        with self._lock:
            self.inference_errors += 1

    def record_step(self, action: np.ndarray, now: float, *, swapped: bool, held: bool, slowed: bool) -> None:
        """One executed control step. `swapped`: first action taken from a newly arrived chunk."""
        with self._lock:
            if self._last_time is not None:
                interval = now - self._last_time
                self.control_intervals_ms.append(interval * 1000)
                if interval > (1 + self.overrun_tolerance) / self.control_hz:
                    self.overruns += 1
            self._last_time = now
            self.held_steps += int(held)
            self.slowed_steps += int(slowed)
            a = np.asarray(action, dtype=np.float64).reshape(-1)
            hist = self._history
            if hist:
                jump = float(np.max(np.abs(a - hist[-1])))
                (self.swap_jumps if swapped else self.step_jumps).append(jump)
                if swapped and len(hist) >= 3:
                    # Third finite difference (per step^3) over the last four executed actions.
                    jerk = a - 3 * hist[-1] + 3 * hist[-2] - hist[-3]
                    self.swap_jerks.append(float(np.max(np.abs(jerk))))
            hist.append(a)

    def reset_history(self) -> None:
        with self._lock:
            self._history.clear()
            self._last_time = None

    def summary(self) -> dict:
        with self._lock:
            return {
                "inference_delay_steps": _summary(self.delay_steps),
                "round_trip_ms": _summary(self.round_trip_ms),
                "swap_max_jump": max(self.swap_jumps, default=0.0),
                "swap_jumps": _summary(self.swap_jumps),
                "swap_jerk": _summary(self.swap_jerks),
                "within_chunk_jumps": _summary(self.step_jumps),
                "control_interval_ms": _summary(self.control_intervals_ms),
                "overruns": self.overruns,
                "held_steps": self.held_steps,
                "slowed_steps": self.slowed_steps,
                "inference_errors": self.inference_errors,
            }

    def format(self) -> str:
        s = self.summary()
        d, rt, j = s["inference_delay_steps"], s["round_trip_ms"], s["swap_jumps"]
        parts = [f"chunks {d['n']}"]
        if d["n"]:
            parts.append(f"delay steps p50 {d['p50']:.0f} max {d['max']:.0f}")
            parts.append(f"round trip ms p50 {rt['p50']:.1f} p90 {rt['p90']:.1f} max {rt['max']:.1f}")
        if j["n"]:
            parts.append(
                f"swap jump max {s['swap_max_jump']:.4f} (within-chunk p90 {s['within_chunk_jumps']['p90']:.4f}), "
                f"swap jerk max {s['swap_jerk'].get('max', 0.0):.4f}"
            )
        parts.append(f"overruns {s['overruns']}, held {s['held_steps']}, slowed {s['slowed_steps']}")
        if s["inference_errors"]:
            parts.append(f"inference errors {s['inference_errors']}")
        return "; ".join(parts)
