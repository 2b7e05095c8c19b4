"""The small interface every arm implements (real driver or simulator)."""

from __future__ import annotations

import abc
import dataclasses
import logging
import math
import time

import numpy as np

logger = logging.getLogger("robot_common")


class FarFromStartError(RuntimeError):
    """The first command of an episode is far from where the arm is (and no move-to-start was asked for)."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-dimension [low, high] of a command, the largest change allowed per control step, and how far the first
    command of an episode may be from the measured state (default 3 steps) unless a move-to-start is allowed."""

    low: np.ndarray
    high: np.ndarray
    max_step: np.ndarray
    max_start_offset: np.ndarray | None = None

    def start_offset(self) -> np.ndarray:
        return 3 * np.asarray(self.max_step) if self.max_start_offset is None else np.asarray(self.max_start_offset)

    def clip(self, target: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Clamp to the workspace, then limit the jump from `current` (the previous command or the state)."""
        target = np.clip(np.asarray(target, dtype=np.float64), self.low, self.high)
        return current + np.clip(target - current, -self.max_step, self.max_step)


class ClampStats:
    """Counts of safety clamps per kind ("limit": target outside [low, high]; "step": change from the previous
    command larger than max_step) and per dimension, and a rate-limited WARNING log of them.

    The first clamp of a kind is logged at once; later ones at most once per `log_interval_s` per kind, each line
    saying how many clamps of that kind happened since the previous line, so every clamp is accounted for in the
    log without flooding it at the control rate. `flush()` (episode boundaries, disconnect) logs what is pending."""

    KINDS = ("limit", "step")

    def __init__(self, names, *, log_interval_s: float = 1.0, clock=time.monotonic, log=None):
        self.names = tuple(names)
        self.log_interval_s, self._clock = float(log_interval_s), clock
        self._log = log or logger
        self.counts = {k: np.zeros(len(self.names), dtype=np.int64) for k in self.KINDS}
        self.commands = {k: 0 for k in self.KINDS}  # commands with at least one clamp of that kind
        self._pending = {k: 0 for k in self.KINDS}  # clamped commands not yet reported in a log line
        self._pending_dims = {k: np.zeros(len(self.names), dtype=bool) for k in self.KINDS}
        self._last_log = {k: -math.inf for k in self.KINDS}

    def record(self, kind: str, mask: np.ndarray, raw: np.ndarray, sent: np.ndarray) -> None:
        """One command clamped on the dims in `mask` (`raw`: what was asked, `sent`: what went out)."""
        self.counts[kind] += mask
        self.commands[kind] += 1
        self._pending[kind] += 1
        self._pending_dims[kind] |= mask
        now = self._clock()
        if now - self._last_log[kind] >= self.log_interval_s:
            self._last_log[kind] = now
            idx = np.flatnonzero(mask)
            what = ", ".join(f"{self.names[i]} {raw[i]:.4f} -> {sent[i]:.4f}" for i in idx)
            self._emit(kind, what)

    def _emit(self, kind: str, detail: str) -> None:
        n, dims = self._pending[kind], [self.names[i] for i in np.flatnonzero(self._pending_dims[kind])]
        label = "joint/gripper limit" if kind == "limit" else "per-step (velocity) limit"
        self._log.warning(
            "%s clamp: %s (%d clamped command(s) since the last such line, dims %s; %d in total)",
            label,
            detail,
            n,
            dims,
            self.commands[kind],
        )
        self._pending[kind] = 0
        self._pending_dims[kind][:] = False

    def flush(self) -> None:
        """Log the clamps not yet reported (rate-limited away) so the log accounts for every one."""
        for kind in self.KINDS:
            if self._pending[kind]:
                self._last_log[kind] = self._clock()
                self._emit(kind, "earlier clamps not logged yet")

    def summary(self) -> dict:
        """{"limit": {dim name: count}, "step": {...}, "limit_commands": n, "step_commands": n} for metrics."""
        out: dict = {k: {n: int(c) for n, c in zip(self.names, self.counts[k])} for k in self.KINDS}
        out.update({f"{k}_commands": self.commands[k] for k in self.KINDS})
        return out


class Robot(abc.ABC):
    """A single arm with a gripper. `state()` and `command()` use the dataset's units (rad, m)."""

    state_dim: int
    limits: Limits
    dim_names: tuple[str, ...] | None = None
    """Names of the command dims, used in clamp log lines (default dim_0, dim_1, ...)."""

    @property
    def clamp_stats(self) -> ClampStats:
        """Every safety clamp `command()` applied, counted per kind ("limit", "step") and dim; also logged."""
        stats = self.__dict__.get("_clamp_stats")
        if stats is None:
            names = self.dim_names or tuple(f"dim_{i}" for i in range(self.state_dim))
            stats = self.__dict__["_clamp_stats"] = ClampStats(names)
        return stats

    @property
    def clamp_counts(self) -> dict[str, np.ndarray]:
        """Per-dim clamp counts: {"limit": int array [state_dim], "step": int array [state_dim]}."""
        return {k: v.copy() for k, v in self.clamp_stats.counts.items()}

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    @abc.abstractmethod
    def state(self) -> np.ndarray:
        """Current state vector [state_dim] (float32)."""

    @abc.abstractmethod
    def _send(self, target: np.ndarray) -> None:
        """Send an already safety-clipped command to the hardware / simulator."""

    def command(self, target) -> np.ndarray:
        """Clip `target` with the safety limits and send it. Returns what was sent."""
        target = np.asarray(target, dtype=np.float64).reshape(-1)
        if target.shape[0] != self.state_dim:
            raise ValueError(f"action has {target.shape[0]} dims, the robot expects {self.state_dim}")
        if not np.all(np.isfinite(target)):
            raise ValueError(f"non-finite action {target}; refusing to move")
        # Rate-limit against the previous command (a lagging arm never sees a command jump), the first one
        # against the measured state.
        reference = getattr(self, "_last_command", None)
        if reference is None:
            reference = self.state().astype(np.float64)
            self._check_start(target, reference)
        safe = self.limits.clip(target, reference)
        self._record_clamps(target, reference, safe)
        self._send(safe)
        self._last_command = safe
        return safe.astype(np.float32)

    def _record_clamps(self, target: np.ndarray, reference: np.ndarray, safe: np.ndarray) -> None:
        lim = self.limits
        in_box = np.clip(target, lim.low, lim.high)
        out = (target < lim.low) | (target > lim.high)
        stepped = np.abs(in_box - reference) > np.asarray(lim.max_step) + 1e-12
        if out.any():
            self.clamp_stats.record("limit", out, target, in_box)
        if stepped.any():
            self.clamp_stats.record("step", stepped, in_box, safe)

    allow_move_to_start: bool = False
    """True: a far first command is approached at the per-step limit (an explicit move-to-start) instead of refused."""

    def _check_start(self, target: np.ndarray, state: np.ndarray) -> None:
        offset = np.abs(np.clip(target, self.limits.low, self.limits.high) - state)
        over = np.flatnonzero(offset > self.limits.start_offset() + 1e-9)
        if over.size == 0:
            return
        i = int(over[0])
        msg = (
            f"first command is {offset[i]:.3f} away from the arm's state on dim {i} (allowed "
            f"{self.limits.start_offset()[i]:.3f}; dims over: {over.tolist()})"
        )
        if not self.allow_move_to_start:
            raise FarFromStartError(
                f"{msg}. Refusing to jump: put the arm near the policy's start pose, or pass --move-to-start to "
                "approach it at the per-step speed limit."
            )
        logger.warning("%s: moving to the start pose at the per-step limit (--move-to-start)", msg)

    def reset_command_reference(self) -> None:
        """Forget the previous command: the next one is limited against the measured state (new episode).
        Clamps not yet logged (rate limit) are logged now."""
        self._last_command = None
        self.flush_clamp_log()

    def flush_clamp_log(self) -> None:
        """Log the clamps the rate limit has not reported yet (episode boundaries; call it before disconnecting)."""
        if "_clamp_stats" in self.__dict__:
            self.clamp_stats.flush()


class Camera(abc.ABC):
    @abc.abstractmethod
    def read(self) -> np.ndarray:
        """An RGB frame, HWC uint8."""


class SimCamera(Camera):
    """Synthetic frames that depend on a robot's state (so policies and recordings see motion)."""

    def __init__(self, robot: Robot, shape=(480, 640), seed: int = 0):
        self._robot, self._shape = robot, shape
        self._base = np.random.default_rng(seed).integers(0, 60, size=(*shape, 3), dtype=np.uint8)

    def read(self) -> np.ndarray:
        h, w = self._shape
        img = self._base.copy()
        s = self._robot.state()
        y = int((np.tanh(s[0]) * 0.4 + 0.5) * (h - 20))
        x = int((np.tanh(s[1] if len(s) > 1 else 0) * 0.4 + 0.5) * (w - 20))
        img[y : y + 20, x : x + 20] = (220, 60, 60)
        return img
