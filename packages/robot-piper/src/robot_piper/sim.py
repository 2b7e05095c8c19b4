"""A simulated Piper (same interface as the CAN driver): joints track commands with a first-order lag."""

from __future__ import annotations

import numpy as np

from robot_common.interface import Limits
from robot_common.interface import Robot

# piper_sdk.piper_param limits (rad) and gripper opening (m)
JOINT_LOW = np.array([-2.6179, 0.0, -2.967, -1.745, -1.22, -2.09439, 0.0])
JOINT_HIGH = np.array([2.6179, 3.14, 0.0, 1.745, 1.22, 2.09439, 0.07])
MAX_STEP = np.array([0.2] * 6 + [0.02])  # rad / m per control step
HOME = np.array([0.0, 0.5, -0.5, 0.0, 0.3, 0.0, 0.05])

PIPER_LIMITS = Limits(JOINT_LOW, JOINT_HIGH, MAX_STEP)


class SimPiper(Robot):
    state_dim = 7
    limits = PIPER_LIMITS

    def __init__(self, lag: float = 0.5):
        self._q = HOME.copy()
        self._lag = lag
        self.connected = False

    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False

    def state(self) -> np.ndarray:
        return self._q.astype(np.float32)

    def _send(self, target: np.ndarray) -> None:
        if not self.connected:
            raise RuntimeError("SimPiper is not connected; call connect() first")
        self._q = self._q + (1 - self._lag) * (target - self._q)


def scripted_leader(seed: int = 0):
    """A master-arm stand-in: a smooth pick-like trajectory around home."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 7)

    def leader(t: int) -> np.ndarray:
        s = t / 30.0
        q = HOME + 0.3 * np.sin(s + phase) * np.array([1, 0.5, 0.5, 1, 0.5, 1, 0])
        q[6] = 0.035 + 0.03 * np.sin(s)
        return np.clip(q, JOINT_LOW, JOINT_HIGH)

    return leader
