"""Thin Piper driver over piper_sdk (imported only here). Units: SDK 0.001 deg / 0.001 mm <-> rad / m.

Real arm: `PiperDriver("can0")` (SocketCAN; the SDK checks the port is up at 1 Mbit/s).
Simulated arm: `PiperDriver("piper_sim", interface="virtual")` with a `robot_piper.can_sim.SimPiperArm` on the
same python-can virtual channel -- the same SDK code path, frames and threads as on hardware.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings

import numpy as np

from robot_common.interface import Robot
from robot_piper.limits import PIPER_LIMITS

logger = logging.getLogger("robot_piper.driver")

MDEG_PER_RAD = 1000.0 * 180.0 / math.pi
UM_PER_M = 1e6  # gripper opening: 0.001 mm units
# MasterSlaveConfig linkage_config codes (piper_sdk): teaching input arm / motion output arm
LINKAGE_CODES = {"master": 0xFA, "follower": 0xFC}
JOINT_NAMES = ("joint_1", "joint_2", "joint_3", "joint_4", "joint_5", "joint_6", "gripper")


def rad_to_sdk(q: np.ndarray) -> list[int]:
    return [int(round(v * MDEG_PER_RAD)) for v in q[:6]] + [int(round(q[6] * UM_PER_M))]


def sdk_to_rad(joints_mdeg, gripper_um) -> np.ndarray:
    return np.array([j / MDEG_PER_RAD for j in joints_mdeg] + [gripper_um / UM_PER_M], dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class ArmStatus:
    """The arm's 0x2A1 status plus the motors' enable bits (0x261-0x266)."""

    ctrl_mode: int  # 0x00 standby, 0x01 CAN control, 0x02 teaching, ...
    arm_status: int  # 0x00 normal, 0x01 emergency stop, 0x04 target beyond a joint limit, ...
    motion_status: int  # 0x00 target reached, 0x01 moving
    err_code: int  # bits 0-5: joint 1-6 angle limit
    enabled: bool


class PiperDriver(Robot):
    """Follower arm on `can_name` (bring the bus up first: piper_sdk's can_activate.sh can0 1000000).

    `interface` is the python-can interface: "socketcan" for the real arm, "virtual" for the simulator."""

    state_dim = 7
    limits = PIPER_LIMITS
    dim_names = JOINT_NAMES  # clamp log lines (robot_common.interface.Robot.command) name the joints

    def __init__(
        self, can_name: str = "can0", speed_percent: int = 50, *, interface: str = "socketcan", timeout_s: float = 10.0
    ):
        if not 1 <= speed_percent <= 100:
            raise ValueError(f"speed_percent={speed_percent}: use 1-100 (% of the arm's max joint speed)")
        self._can, self._speed, self._interface, self._timeout = can_name, speed_percent, interface, timeout_s
        self._piper = None

    # ---- connection ----
    def connect(self) -> None:
        """Open the port, wait for the arm's feedback and enable it (CAN joint control)."""
        t0 = time.time()
        piper = self.open()
        try:
            self._wait(lambda: piper.GetArmJointMsgs().time_stamp > t0, "joint feedback (0x2A5-0x2A7)")
            self._wait(lambda: piper.GetArmLowSpdInfoMsgs().time_stamp > t0, "driver feedback (0x261-0x266)")
            self.enable()
        except Exception:
            self.disconnect()
            raise

    def open(self):
        """Open the CAN port and start the SDK's reader, without waiting for feedback or enabling (for `set_role`
        on an arm that may be a teaching arm, which sends no 0x2A* feedback). Returns the SDK object."""
        from piper_sdk import C_PiperInterface_V2

        if self._piper is not None:
            return self._piper
        if self._interface == "socketcan":
            piper = C_PiperInterface_V2(self._can)  # judge_flag=True: checks the port exists, is up, 1 Mbit/s
        else:
            piper = C_PiperInterface_V2(self._can, judge_flag=False, can_auto_init=False)
            with warnings.catch_warnings():  # the SDK passes python-can's deprecated `bustype=`
                warnings.simplefilter("ignore", DeprecationWarning)
                piper.CreateCanBus(self._can, bustype=self._interface, judge_flag=False)
            _share_one_bus(piper, self._interface, self._can)
        piper.ConnectPort()
        self._piper = piper
        return piper

    def disconnect(self) -> None:
        self.flush_clamp_log()
        if self._piper is not None:
            self._piper.DisconnectPort()
            self._piper = None

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + self._timeout
        while not ready():
            if time.monotonic() > deadline:
                if self._interface == "socketcan":
                    hint = "is the arm powered and the CAN bus up (bash can_activate.sh can0 1000000)?"
                else:
                    hint = f"is a simulator on it (python -m robot_piper.can_sim --channel {self._can} --interface {self._interface})?"
                raise TimeoutError(
                    f"no {what} from the Piper on {self._interface} '{self._can}' within {self._timeout:.1f}s: {hint}"
                )
            time.sleep(0.005)

    def enable(self) -> None:
        """Enable all motors (waits for the enable bits in the driver feedback) and select CAN joint control."""
        self._wait(self._piper.EnablePiper, "motor-enable confirmation (0x261-0x266)")
        self._piper.MotionCtrl_2(0x01, 0x01, self._speed, 0x00)  # CAN control, MOVE J, speed %
        self._piper.GripperCtrl(self._gripper_um(), 1000, 0x01, 0)  # enable the gripper where it is

    def disable(self) -> None:
        """Disable all motors (SDK DisablePiper, 0x471 motor 7 flag 0x01) and wait until every enable bit in the
        driver feedback (0x261-0x266) is clear. The arm goes limp: support it first. `enable()` brings it back;
        the next command is checked against the measured pose again (as at an episode start)."""
        self._wait(lambda: not self._piper.DisablePiper(), "motor-disable confirmation (0x261-0x266)")
        self.reset_command_reference()

    def set_role(self, role: str) -> None:
        """Configure this arm as the teaching input arm ("master", MasterSlaveConfig 0xFA) or the motion output arm
        ("follower", 0xFC) of a master/follower pair, CAN id 0x470, default ids (no offsets). Fire-and-forget:
        the arm sends no acknowledgement; `robot_piper.setup` checks the result on the bus.

        The setting is kept by the arm. A master takes it at once and from then on sends its joint/gripper
        control frames (0x151, 0x155-0x157, 0x159) instead of feedback; switching a master back to follower only
        takes effect after the arm is power-cycled (piper_sdk demo/V2 README)."""
        code = LINKAGE_CODES.get(role)
        if code is None:
            raise ValueError(f"role={role!r}: use one of {sorted(LINKAGE_CODES)}")
        self.sdk.MasterSlaveConfig(code, 0x00, 0x00, 0x00)

    def emergency_stop(self) -> None:
        """SDK quick stop (0x150 = 0x01): the arm stops and ignores motion commands until `recover()`."""
        self._piper.EmergencyStop(0x01)

    def recover(self) -> None:
        """Clear an emergency stop (0x150 = 0x02: errors cleared, motors off) and re-enable."""
        self._piper.EmergencyStop(0x02)
        self._wait(lambda: not any(self._piper.GetArmEnableStatus()), "motor-disable after reset")
        self.enable()

    @property
    def can_name(self) -> str:
        """The CAN port / simulator channel, with the python-can interface: "socketcan:can0"."""
        return f"{self._interface}:{self._can}"

    @property
    def sdk(self):
        """The connected piper_sdk C_PiperInterface_V2, for calls this wrapper does not cover."""
        if self._piper is None:
            raise RuntimeError("PiperDriver is not connected; call connect() first")
        return self._piper

    # ---- readouts (SI units) ----
    def state(self) -> np.ndarray:
        j = self._piper.GetArmJointMsgs().joint_state
        return sdk_to_rad([j.joint_1, j.joint_2, j.joint_3, j.joint_4, j.joint_5, j.joint_6], self._gripper_um())

    def _gripper_um(self) -> int:
        return self._piper.GetArmGripperMsgs().gripper_state.grippers_angle

    def end_pose(self) -> np.ndarray:
        """Flange pose reported by the arm: x, y, z (m), roll, pitch, yaw (rad)."""
        p = self._piper.GetArmEndPoseMsgs().end_pose
        xyz = np.array([p.X_axis, p.Y_axis, p.Z_axis]) / UM_PER_M
        rpy = np.radians(np.array([p.RX_axis, p.RY_axis, p.RZ_axis]) / 1000.0)
        return np.r_[xyz, rpy].astype(np.float32)

    def status(self) -> ArmStatus:
        s = self._piper.GetArmStatus().arm_status
        return ArmStatus(
            s.ctrl_mode, s.arm_status, s.motion_status, int(s.err_code), all(self._piper.GetArmEnableStatus())
        )

    def feedback_hz(self) -> float:
        """Joint feedback rate measured by the SDK (Hz)."""
        return float(self._piper.GetArmJointMsgs().Hz)

    def wait_for_master(self) -> None:
        """Block until the teaching (master) arm's joint commands (0x155-0x157) appear on the bus."""
        t0 = time.time()
        self._wait(
            lambda: self._piper.GetArmJointCtrl().time_stamp > t0,
            "teaching-arm commands (0x155-0x157; is the master arm connected and configured as master?)",
        )

    def master_targets(self) -> np.ndarray:
        """The leader (teaching) arm's commands as seen on the bus, for teleoperated collection."""
        j = self._piper.GetArmJointCtrl().joint_ctrl
        g = self._piper.GetArmGripperCtrl().gripper_ctrl
        return sdk_to_rad([j.joint_1, j.joint_2, j.joint_3, j.joint_4, j.joint_5, j.joint_6], g.grippers_angle)

    # ---- commands ----
    def _send(self, target: np.ndarray) -> None:
        cmd = rad_to_sdk(target)
        self._piper.MotionCtrl_2(0x01, 0x01, self._speed, 0x00)
        self._piper.JointCtrl(*cmd[:6])
        self._piper.GripperCtrl(abs(cmd[6]), 1000, 0x01, 0)


def _share_one_bus(piper, interface: str, channel: str) -> None:
    """Give the SDK one bus for receive and transmit (as it does on Windows/macOS).

    On Linux the SDK opens separate rx and tx buses and relies on SocketCAN's `local_loopback=False` so it does
    not hear itself; other python-can interfaces (virtual, udp_multicast) ignore that flag, so the SDK would read
    its own JointCtrl frames back as a master arm's commands. One bus with receive_own_messages=False avoids it.
    Only public attributes of the SDK's C_STD_CAN (`recv_bus`, `send_bus`) are touched."""
    import can

    port = piper.GetCanBus()
    port.Close()
    port.recv_bus = port.send_bus = can.Bus(interface=interface, channel=channel, receive_own_messages=False)
