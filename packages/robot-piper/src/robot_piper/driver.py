"""Thin Piper driver over piper_sdk (imported only here). Units: SDK 0.001 deg / 0.001 mm <-> rad / m."""

from __future__ import annotations

import math

import numpy as np

from robot_common.interface import Robot
from robot_piper.sim import PIPER_LIMITS

MDEG_PER_RAD = 1000.0 * 180.0 / math.pi
UM_PER_M = 1e6  # gripper opening: 0.001 mm units


def rad_to_sdk(q: np.ndarray) -> list[int]:
    return [int(round(v * MDEG_PER_RAD)) for v in q[:6]] + [int(round(q[6] * UM_PER_M))]


def sdk_to_rad(joints_mdeg, gripper_um) -> np.ndarray:
    return np.array([j / MDEG_PER_RAD for j in joints_mdeg] + [gripper_um / UM_PER_M], dtype=np.float32)


class PiperDriver(Robot):
    """Follower arm on `can_name` (bring the bus up first: piper_sdk's can_activate.sh can0 1000000)."""

    state_dim = 7
    limits = PIPER_LIMITS

    def __init__(self, can_name: str = "can0", speed_percent: int = 50):
        self._can, self._speed = can_name, speed_percent
        self._piper = None

    def connect(self) -> None:
        from piper_sdk import C_PiperInterface_V2

        self._piper = C_PiperInterface_V2(self._can)
        self._piper.ConnectPort()
        while not self._piper.EnablePiper():
            pass
        self._piper.MotionCtrl_2(0x01, 0x01, self._speed, 0x00)  # CAN control, joint move, speed %

    def disconnect(self) -> None:
        if self._piper is not None:
            self._piper.DisconnectPort()
            self._piper = None

    def state(self) -> np.ndarray:
        j = self._piper.GetArmJointMsgs().joint_state
        g = self._piper.GetArmGripperMsgs().gripper_state
        return sdk_to_rad([j.joint_1, j.joint_2, j.joint_3, j.joint_4, j.joint_5, j.joint_6], g.grippers_angle)

    def master_targets(self) -> np.ndarray:
        """The leader (teaching) arm's commands as seen on the bus, for teleoperated collection."""
        j = self._piper.GetArmJointCtrl().joint_ctrl
        g = self._piper.GetArmGripperCtrl().gripper_ctrl
        return sdk_to_rad([j.joint_1, j.joint_2, j.joint_3, j.joint_4, j.joint_5, j.joint_6], g.grippers_angle)

    def _send(self, target: np.ndarray) -> None:
        cmd = rad_to_sdk(target)
        self._piper.MotionCtrl_2(0x01, 0x01, self._speed, 0x00)
        self._piper.JointCtrl(*cmd[:6])
        self._piper.GripperCtrl(abs(cmd[6]), 1000, 0x01, 0)
