"""Flexiv arm in one of two action spaces, on top of a backend (the simulator or the flexivrdk driver).

qpos: state/action = 7 joint angles (rad) + gripper width (m).
pose: state/action = TCP xyz (m) + rotation-6D (first two columns of R) + gripper width (m); the SDK's
quaternion (w, x, y, z) is converted on the way in and out.
"""

from __future__ import annotations

import numpy as np

from robot_common.interface import Limits
from robot_common.interface import Robot
from robot_common.rotations import pose7_to_pose9
from robot_common.rotations import pose9_to_pose7
from robot_common.rotations import quat_continuous
from robot_flexiv import DIMS
from robot_flexiv import common
from robot_flexiv.kinematics import Q_HIGH
from robot_flexiv.kinematics import Q_LOW

GRIPPER_MAX = 0.1
WORKSPACE_LOW = np.array([-0.85, -0.85, 0.0])
WORKSPACE_HIGH = np.array([0.85, 0.85, 1.2])
"""Pose-mode TCP box (m, base frame): the Rizon 4 reaches 0.78 m from the joint-1 axis (+ the wrist-to-flange
offset; Flexiv's URDF gives a 0.89 m workspace sphere about the shoulder at z = 0.365), z from the mounting plane up
to about shoulder height + reach. HOME's flange (0.687, -0.113, 0.326) is inside with >= 0.16 m margin. Tighten it
to your cell (table, fixtures)."""
LIMITS = {
    "qpos": Limits(np.r_[Q_LOW, 0.0], np.r_[Q_HIGH, GRIPPER_MAX], np.r_[[0.15] * 7, 0.02]),
    "pose": Limits(
        np.r_[WORKSPACE_LOW, [-1.0] * 6, 0.0],
        np.r_[WORKSPACE_HIGH, [1.0] * 6, GRIPPER_MAX],
        np.r_[[0.02] * 3, [0.1] * 6, 0.02],
    ),
}


class FlexivArm(Robot):
    """`teach=True` (kinesthetic collection): the backend connects compliant so the arm can be hand-guided, and
    commands are not sent (the operator moves the arm; the recorder stores what it did)."""

    def __init__(self, backend, mode: str, teach: bool = False):
        if mode not in DIMS:
            raise ValueError(f"--mode {mode!r}: use 'pose' or 'qpos'")
        self.backend, self.mode, self.teach = backend, mode, teach
        self.state_dim = DIMS[mode]
        self.limits = LIMITS[mode]
        self.dim_names = tuple(common.QPOS_NAMES if mode == "qpos" else common.POSE_NAMES)  # clamp log lines

    def connect(self) -> None:
        self.backend.connect("teach" if self.teach else self.mode)
        self._last_quat = None
        if self.mode == "qpos":
            # The robot's own joint limits (RobotInfo q_min / q_max) tighten the configured ones.
            q_min, q_max = self.backend.joint_limits()
            lim = LIMITS["qpos"]
            low, high = lim.low.copy(), lim.high.copy()
            low[:7], high[:7] = np.maximum(low[:7], q_min), np.minimum(high[:7], q_max)
            self.limits = Limits(low, high, lim.max_step)

    def disconnect(self) -> None:
        self.backend.disconnect()

    def qpos(self) -> np.ndarray:
        return np.r_[self.backend.joints(), self.backend.gripper_width()].astype(np.float32)

    def pose(self) -> np.ndarray:
        return np.r_[pose7_to_pose9(self.backend.tcp_pose7()), self.backend.gripper_width()].astype(np.float32)

    def state(self) -> np.ndarray:
        return self.qpos() if self.mode == "qpos" else self.pose()

    def _send(self, target: np.ndarray) -> None:
        if self.teach:
            return
        if self.mode == "qpos":
            self.backend.move_joints(target[:7])
        else:
            # q and -q are the same rotation: keep successive quaternions in one hemisphere (the first one next to
            # the measured TCP quaternion) so the controller never sees a sign jump.
            pose7 = pose9_to_pose7(target[:9])
            reference = getattr(self, "_last_quat", None)
            if reference is None:
                reference = self.backend.tcp_pose7()[3:7]
            pose7[3:7] = quat_continuous(pose7[3:7], reference)
            self._last_quat = pose7[3:7].copy()
            self.backend.move_tcp(pose7)
        self.backend.move_gripper(float(target[-1]))


def make_arm(mode: str, sim: bool, robot_sn: str = "", *, teach: bool = False, motion=None):
    """The Flexiv arm on the simulator or the real robot (`motion`: driver.MotionLimits, velocity/acceleration
    limits sent with every command); `teach`: compliant, hand-guided, no commands sent (kinesthetic teaching)."""
    if sim:
        from robot_flexiv.sim import SimRizonBackend

        return FlexivArm(SimRizonBackend(), mode, teach=teach)
    if not robot_sn:
        raise ValueError("--robot-sn is required for the real robot (e.g. Rizon4-123456)")
    from robot_flexiv.driver import FlexivRdkBackend

    return FlexivArm(FlexivRdkBackend(robot_sn, limits=motion), mode, teach=teach)
