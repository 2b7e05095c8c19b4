"""The small interface every arm implements (real driver or simulator)."""

from __future__ import annotations

import abc
import dataclasses
import logging

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


class Robot(abc.ABC):
    """A single arm with a gripper. `state()` and `command()` use the dataset's units (rad, m)."""

    state_dim: int
    limits: Limits

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
        self._send(safe)
        self._last_command = safe
        return safe.astype(np.float32)

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
        """Forget the previous command: the next one is limited against the measured state (new episode)."""
        self._last_command = None


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
