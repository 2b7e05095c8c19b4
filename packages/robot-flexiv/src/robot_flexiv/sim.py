"""Simulated Rizon 4 behind the driver interface: published kinematics (FK for the TCP pose, IK for Cartesian
commands) and first-order joint tracking.

Commands set a joint target (Cartesian commands go through IK first, seeded from the current joint target); the
joints follow it with dq/dt = clip((target - q) / tau, -DQ_MAX, DQ_MAX), i.e. a first-order lag with time constant
`tau` that never exceeds the published per-joint velocity limit. The gripper width follows its target the same way
(at most GRIPPER_MAX_VEL). The solution for a constant target is integrated in closed form, so the result does not
depend on how often the state is read.

Time: by default the model advances on every call by the monotonic time elapsed since the previous call
(integrate-on-read: a realtime `--sim` run sees the arm lag and settle like a real one, with no thread). Pass
`clock=None` for deterministic tests and advance explicitly with `step(dt)`.
"""

from __future__ import annotations

from collections.abc import Callable
import threading
import time

import numpy as np

from robot_common.rotations import matrix_to_quat
from robot_common.rotations import quat_to_matrix
from robot_flexiv import kinematics

TAU = 0.05
"""Default tracking time constant (s): a step reaches 95 % in about 3 tau when not velocity limited."""
GRIPPER_MAX = 0.1
GRIPPER_MAX_VEL = 0.1
"""Simulated gripper speed limit (m/s), the driver's default `--motion.gripper-vel`."""


def track(x, target, dt: float, tau: float, v_max) -> np.ndarray:
    """Exact solution after `dt` of dx/dt = clip((target - x) / tau, -v_max, v_max) for a constant target
    (elementwise): a ramp at v_max while the error exceeds v_max * tau, then an exponential decay."""
    x, target = np.asarray(x, np.float64), np.asarray(target, np.float64)
    v_max = np.broadcast_to(np.asarray(v_max, np.float64), x.shape)
    e0 = np.abs(target - x)
    band = v_max * tau
    t_ramp = np.maximum(e0 - band, 0.0) / v_max  # time spent at the velocity limit
    e = np.where(
        dt <= t_ramp,
        e0 - v_max * dt,
        np.minimum(e0, band) * np.exp(-(dt - t_ramp) / tau),
    )
    return target - np.sign(target - x) * e


class SimRizonBackend:
    def __init__(self, tau: float = TAU, clock: Callable[[], float] | None = time.monotonic, q0=None):
        if tau <= 0:
            raise ValueError(f"tau={tau}: the tracking time constant must be > 0 s")
        self.tau, self._clock = float(tau), clock
        self.q = np.asarray(kinematics.HOME if q0 is None else q0, dtype=np.float64).copy()
        self.q_target = self.q.copy()
        self.width = self.width_target = 0.05
        self.mode = None
        self._t = clock() if clock is not None else 0.0
        self._lock = threading.Lock()  # a reader thread and the control thread may both advance the clock

    # -- time ---------------------------------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        """Advance the tracking dynamics by `dt` seconds."""
        if dt <= 0:
            return
        self.q = track(self.q, self.q_target, dt, self.tau, kinematics.DQ_MAX)
        self.width = float(track(self.width, self.width_target, dt, self.tau, GRIPPER_MAX_VEL))

    def _sync(self) -> None:
        if self._clock is not None:
            with self._lock:
                now = self._clock()
                self.step(now - self._t)
                self._t = now

    # -- driver interface ----------------------------------------------------------------------------------------
    def connect(self, mode: str) -> None:
        self._sync()
        self.mode = mode

    def disconnect(self) -> None:
        self.mode = None

    def _check(self):
        if self.mode is None:
            raise RuntimeError("simulated Rizon is not connected")

    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        return kinematics.Q_LOW.copy(), kinematics.Q_HIGH.copy()

    def joints(self) -> np.ndarray:
        self._sync()
        return self.q.copy()

    def gripper_width(self) -> float:
        self._sync()
        return self.width

    def tcp_pose7(self) -> np.ndarray:
        self._sync()
        p, r = kinematics.fk(self.q)
        return np.r_[p, matrix_to_quat(r)]

    def move_joints(self, q) -> None:
        self._check()
        self._sync()
        self.q_target = np.clip(np.asarray(q, dtype=np.float64), kinematics.Q_LOW, kinematics.Q_HIGH)

    def move_tcp(self, pose7) -> None:
        self._check()
        self._sync()
        pose7 = np.asarray(pose7, dtype=np.float64)
        self.q_target = kinematics.ik(pose7[:3], quat_to_matrix(pose7[3:7]), self.q_target)

    def move_gripper(self, width: float) -> None:
        self._check()
        self._sync()
        self.width_target = float(np.clip(width, 0.0, GRIPPER_MAX))

    def settled(self, tol: float = 1e-4) -> bool:
        """True when the joints and the gripper are within `tol` of their targets."""
        self._sync()
        return bool(np.abs(self.q - self.q_target).max() < tol and abs(self.width - self.width_target) < tol)


def scripted_leader_qpos(seed: int = 0):
    """A smooth joint-space trajectory around HOME (+-0.2 rad per joint) with the gripper opening and closing."""
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, 7)

    def leader(t: int) -> np.ndarray:
        q = kinematics.HOME + 0.2 * np.sin(t / 20.0 + phase)
        return np.r_[q, 0.05 + 0.03 * np.sin(t / 20.0)]

    return leader
