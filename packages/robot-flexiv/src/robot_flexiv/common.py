"""Flexiv dataset layout: every episode records BOTH spaces so one dataset trains either config."""

from robot_common.recorder import image_feature
from robot_common.recorder import vector_feature

QPOS_NAMES = [f"joint_{i}" for i in range(1, 8)] + ["gripper"]
POSE_NAMES = ["x", "y", "z", "r11", "r21", "r31", "r12", "r22", "r32", "gripper"]


def features(image_hw=(480, 640)) -> dict:
    return {
        "observation.state.qpos": vector_feature(8, QPOS_NAMES),
        "action.qpos": vector_feature(8, QPOS_NAMES),
        "observation.state.pose": vector_feature(10, POSE_NAMES),
        "action.pose": vector_feature(10, POSE_NAMES),
        "observation.images.base": image_feature((*image_hw, 3)),
        "observation.images.wrist": image_feature((*image_hw, 3)),
    }


def make_arm(mode: str, sim: bool, robot_sn: str = "", *, teach: bool = False, motion=None):
    """The Flexiv arm on the simulator or the real robot (`motion`: driver.MotionLimits, velocity/acceleration
    limits sent with every command); `teach`: compliant, hand-guided, no commands sent (kinesthetic teaching)."""
    from robot_flexiv.arm import FlexivArm

    if sim:
        from robot_flexiv.sim import SimRizonBackend

        return FlexivArm(SimRizonBackend(), mode, teach=teach)
    if not robot_sn:
        raise ValueError("--robot-sn is required for the real robot (e.g. Rizon4-123456)")
    from robot_flexiv.driver import FlexivRdkBackend

    return FlexivArm(FlexivRdkBackend(robot_sn, limits=motion), mode, teach=teach)
