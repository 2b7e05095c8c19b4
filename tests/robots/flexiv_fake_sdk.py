"""Run in .venv-flexiv (Python 3.12, real flexivrdk 2.1): drive robot_flexiv.driver.FlexivRdkBackend against a
fake Robot / Gripper that accept exactly what the real binary's signatures say (checked against its docstrings
first) and are built from the SDK's own command and state types. Prints a JSON report for the pytest side."""

from __future__ import annotations

import json
import sys

import flexivrdk

from robot_flexiv.arm import FlexivArm
from robot_flexiv.driver import FlexivRdkBackend
from robot_flexiv.driver import MotionLimits

G = flexivrdk.JointGroup.ARM_1
# The real binary's signatures our fake enforces (a new SDK that changes them fails here).
SIGNATURES = [
    (
        flexivrdk.Robot.SendJointPosition,
        "cmds: dict[flexivrdk.flexivrdk.JointGroup, flexivrdk.flexivrdk.NrtJointPositionCmd]",
    ),
    (
        flexivrdk.Robot.SendCartesianMotionForce,
        "cmds: dict[flexivrdk.flexivrdk.JointGroup, flexivrdk.flexivrdk.NrtCartesianCmd]",
    ),
    (flexivrdk.Robot.states, "-> dict[flexivrdk.flexivrdk.JointGroup, flexivrdk.flexivrdk.RobotStates]"),
    (flexivrdk.Robot.SwitchMode, "mode: flexivrdk.flexivrdk.Mode"),
    (flexivrdk.Robot.SetJointImpedance, "group: flexivrdk.flexivrdk.JointGroup, K_q: list[float]"),
    (flexivrdk.Robot.ServoOn, "ServoOn(self: flexivrdk.flexivrdk.Robot) -> None"),
    (flexivrdk.Robot.estop_released, "-> bool"),
    (flexivrdk.Gripper.Enable, "group: flexivrdk.flexivrdk.JointGroup, name: str"),
    (
        flexivrdk.Gripper.Move,
        "group: flexivrdk.flexivrdk.JointGroup, width: float, velocity: float, force_limit: float",
    ),
    (flexivrdk.Gripper.states, "-> dict[flexivrdk.flexivrdk.JointGroup, flexivrdk.flexivrdk.GripperStates]"),
]
for fn, sig in SIGNATURES:
    assert sig in (fn.__doc__ or ""), f"flexivrdk signature changed: {fn.__doc__.splitlines()[0]}"

log: list = []


def _group_dict(cmds, kind):
    assert isinstance(cmds, dict) and list(cmds) == [G], cmds
    assert isinstance(cmds[G], kind), type(cmds[G])
    return cmds[G]


class FakeRobot:
    def __init__(self, robot_sn: str, verbose: bool = True, lite: bool = False):
        self.sn, self.calls, self._op = robot_sn, 0, False
        self.st = flexivrdk.RobotStates()
        self.st.q = [0.1 * i for i in range(7)]
        self.st.tcp_pose = [0.5, 0.0, 0.4, 0.0, 1.0, 0.0, 0.0]
        self.inf = flexivrdk.RobotInfo()
        self.inf.q_min = {G: [-1.0] * 7}
        self.inf.q_max = {G: [1.0] * 7}
        self.inf.K_q_nom = {G: [1000.0] * 7}

    def estop_released(self):
        return True

    def fault(self):
        return False

    def ServoOn(self):
        log.append(["ServoOn"])

    def operational(self):
        self.calls += 1
        return self.calls > 2

    def SwitchMode(self, mode):
        assert isinstance(mode, flexivrdk.Mode)
        log.append(["SwitchMode", mode.name])

    def SetJointImpedance(self, group, K_q, Z_q=()):
        assert group == G
        log.append(["SetJointImpedance", list(K_q)])

    def info(self):
        return self.inf

    def states(self):
        return {G: self.st}

    def SendJointPosition(self, cmds):
        c = _group_dict(cmds, flexivrdk.NrtJointPositionCmd)
        log.append(["SendJointPosition", list(c.q_d), list(c.dq_max), list(c.ddq_max)])

    def SendCartesianMotionForce(self, cmds):
        c = _group_dict(cmds, flexivrdk.NrtCartesianCmd)
        log.append(["SendCartesianMotionForce", list(c.pose_d), c.max_linear_vel, c.max_angular_vel])

    def Stop(self):
        log.append(["Stop"])


class FakeGripper:
    def __init__(self, robot):
        assert isinstance(robot, FakeRobot)
        self.gs = flexivrdk.GripperStates()
        self.gs.width = 0.05

    def Enable(self, group, name):
        assert group == G and isinstance(name, str)
        log.append(["GripperEnable", name])

    def Move(self, group, width, velocity, force_limit):
        assert group == G
        log.append(["GripperMove", width, velocity, force_limit])

    def states(self):
        return {G: self.gs}


flexivrdk.Robot, flexivrdk.Gripper = FakeRobot, FakeGripper
mode = sys.argv[1]
arm = FlexivArm(
    FlexivRdkBackend("Rizon4-123456", limits=MotionLimits(max_joint_vel=0.3, max_linear_vel=0.2, teach_stiffness=0.1)),
    "qpos" if mode == "teach" else mode,
    teach=mode == "teach",
)
arm.connect()
state = arm.state()
sent = arm.command(state + 0.01)
arm.disconnect()
print(json.dumps({"log": log, "state": state.tolist(), "sent": sent.tolist(), "high": arm.limits.high.tolist()}))
