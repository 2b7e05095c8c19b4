"""Simulated Rizon backend: joint-space state, FK for the TCP pose, IK for Cartesian commands."""

from __future__ import annotations

import numpy as np

from robot_common.rotations import matrix_to_quat
from robot_common.rotations import quat_to_matrix
from robot_flexiv import kinematics


class SimRizonBackend:
    def __init__(self):
        self.q = kinematics.HOME.copy()
        self.width = 0.05
        self.mode = None

    def connect(self, mode: str) -> None:
        self.mode = mode

    def disconnect(self) -> None:
        self.mode = None

    def _check(self):
        if self.mode is None:
            raise RuntimeError("simulated Rizon is not connected")

    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        return kinematics.Q_LOW.copy(), kinematics.Q_HIGH.copy()

    def joints(self) -> np.ndarray:
        return self.q.copy()

    def gripper_width(self) -> float:
        return self.width

    def tcp_pose7(self) -> np.ndarray:
        p, r = kinematics.fk(self.q)
        return np.r_[p, matrix_to_quat(r)]

    def move_joints(self, q) -> None:
        self._check()
        self.q = np.clip(np.asarray(q, dtype=np.float64), kinematics.Q_LOW, kinematics.Q_HIGH)

    def move_tcp(self, pose7) -> None:
        self._check()
        self.q = kinematics.ik(np.asarray(pose7[:3]), quat_to_matrix(pose7[3:7]), self.q)

    def move_gripper(self, width: float) -> None:
        self._check()
        self.width = float(np.clip(width, 0.0, 0.1))


def scripted_leader_qpos(seed: int = 0):
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, 7)

    def leader(t: int) -> np.ndarray:
        q = kinematics.HOME + 0.2 * np.sin(t / 20.0 + phase)
        return np.r_[q, 0.05 + 0.03 * np.sin(t / 20.0)]

    return leader
