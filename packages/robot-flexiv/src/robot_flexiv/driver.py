"""Thin flexivrdk backend (imported only here; flexivrdk has no Python 3.11 wheel: use .venv-flexiv)."""

from __future__ import annotations

import numpy as np


class FlexivRdkBackend:
    def __init__(self, robot_sn: str, gripper_name: str = "Flexiv-GN01"):
        self._sn, self._gripper_name = robot_sn, gripper_name
        self._robot = self._gripper = self._rdk = None

    def connect(self, mode: str) -> None:
        import flexivrdk

        self._rdk = flexivrdk
        self._robot = flexivrdk.Robot(self._sn)
        if self._robot.fault() and not self._robot.ClearFault():
            raise RuntimeError("Flexiv fault could not be cleared; check the e-stop and the robot display")
        self._robot.Enable() if hasattr(self._robot, "Enable") else self._robot.ServoOn()
        while not self._robot.operational():
            pass
        self._robot.SwitchMode(
            flexivrdk.Mode.NRT_JOINT_POSITION if mode == "qpos" else flexivrdk.Mode.NRT_CARTESIAN_MOTION_FORCE
        )
        self._gripper = flexivrdk.Gripper(self._robot)
        self._gripper.Enable(self._gripper_name)

    def disconnect(self) -> None:
        if self._robot is not None:
            self._robot.Stop()
            self._robot = None

    def _states(self):
        return self._robot.states()

    def joints(self) -> np.ndarray:
        return np.asarray(self._states().q, dtype=np.float64)

    def tcp_pose7(self) -> np.ndarray:
        return np.asarray(self._states().tcp_pose, dtype=np.float64)

    def gripper_width(self) -> float:
        return float(self._gripper.states().width)

    def move_joints(self, q) -> None:
        n = len(q)
        self._robot.SendJointPosition(list(q), [0.0] * n, [0.5] * n, [1.0] * n)

    def move_tcp(self, pose7) -> None:
        self._robot.SendCartesianMotionForce(list(pose7))

    def move_gripper(self, width: float) -> None:
        self._gripper.Move(width, 0.1, 20)
