"""Thin flexivrdk 2.x backend (the SDK is imported only here; it has no Python 3.11 wheel: use .venv-flexiv).

flexivrdk 2.x addresses every command and state by joint group: `states()[JointGroup.ARM_1]`,
`SendJointPosition({ARM_1: NrtJointPositionCmd(q_d, dq_d, dq_max, ddq_max)})`,
`SendCartesianMotionForce({ARM_1: NrtCartesianCmd(pose_d, ..., max_linear_vel, ...)})`, `Gripper.Move(ARM_1, ...)`.
Modes: `qpos` -> NRT_JOINT_POSITION, `pose` -> NRT_CARTESIAN_MOTION_FORCE, `teach` -> NRT_JOINT_IMPEDANCE with the
stiffness scaled down so the arm can be hand-guided (kinesthetic teaching; no motion is commanded in that mode).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class MotionLimits:
    """Velocity / acceleration limits passed with every command (SI units)."""

    max_joint_vel: float = 0.5  # rad/s
    max_joint_acc: float = 1.0  # rad/s^2
    max_linear_vel: float = 0.5  # m/s
    max_angular_vel: float = 1.0  # rad/s
    max_linear_acc: float = 2.0  # m/s^2
    max_angular_acc: float = 5.0  # rad/s^2
    gripper_vel: float = 0.1  # m/s
    gripper_force: float = 20.0  # N
    teach_stiffness: float = 0.0
    """Teach mode: joint stiffness as a fraction of the nominal K_q (0 = free-floating, gravity compensated)."""


class FlexivRdkBackend:
    def __init__(
        self,
        robot_sn: str,
        gripper_name: str = "Flexiv-GN01",
        limits: MotionLimits | None = None,
        connect_timeout_s: float = 30.0,
    ):
        self._sn, self._gripper_name = robot_sn, gripper_name
        self.motion = limits or MotionLimits()
        self._timeout = connect_timeout_s
        self._robot = self._gripper = self._rdk = self._group = None

    def connect(self, mode: str) -> None:
        import flexivrdk

        self._rdk = flexivrdk
        self._group = flexivrdk.JointGroup.ARM_1
        robot = flexivrdk.Robot(self._sn)
        if not robot.estop_released():
            raise RuntimeError("Flexiv e-stop is pressed: release it, then reconnect")
        if robot.fault() and not robot.ClearFault():
            raise RuntimeError("Flexiv fault could not be cleared; check the robot display / event log")
        robot.ServoOn()
        deadline = time.monotonic() + self._timeout
        while not robot.operational():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Flexiv {self._sn} not operational after {self._timeout:.0f} s (brakes, mode?)")
            time.sleep(0.01)
        modes = {
            "qpos": flexivrdk.Mode.NRT_JOINT_POSITION,
            "pose": flexivrdk.Mode.NRT_CARTESIAN_MOTION_FORCE,
            "teach": flexivrdk.Mode.NRT_JOINT_IMPEDANCE,
        }
        robot.SwitchMode(modes[mode])
        if mode == "teach":
            k_nom = robot.info().K_q_nom[self._group]
            robot.SetJointImpedance(self._group, [self.motion.teach_stiffness * k for k in k_nom])
        self._robot = robot
        self._gripper = flexivrdk.Gripper(robot)
        self._gripper.Enable(self._group, self._gripper_name)

    def disconnect(self) -> None:
        if self._robot is not None:
            self._robot.Stop()
            self._robot = None

    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        info = self._robot.info()
        return np.asarray(info.q_min[self._group], np.float64), np.asarray(info.q_max[self._group], np.float64)

    def _states(self):
        return self._robot.states()[self._group]

    def joints(self) -> np.ndarray:
        return np.asarray(self._states().q, dtype=np.float64)

    def tcp_pose7(self) -> np.ndarray:
        return np.asarray(self._states().tcp_pose, dtype=np.float64)

    def gripper_width(self) -> float:
        return float(self._gripper.states()[self._group].width)

    def move_joints(self, q) -> None:
        n, m = len(q), self.motion
        cmd = self._rdk.NrtJointPositionCmd(
            [float(v) for v in q], [0.0] * n, [m.max_joint_vel] * n, [m.max_joint_acc] * n
        )
        self._robot.SendJointPosition({self._group: cmd})

    def move_tcp(self, pose7) -> None:
        m = self.motion
        cmd = self._rdk.NrtCartesianCmd(
            [float(v) for v in pose7],
            max_linear_vel=m.max_linear_vel,
            max_angular_vel=m.max_angular_vel,
            max_linear_acc=m.max_linear_acc,
            max_angular_acc=m.max_angular_acc,
        )
        self._robot.SendCartesianMotionForce({self._group: cmd})

    def move_gripper(self, width: float) -> None:
        self._gripper.Move(self._group, float(width), self.motion.gripper_vel, self.motion.gripper_force)
