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
