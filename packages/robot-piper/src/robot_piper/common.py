"""Piper dataset layout (features used by collect and by the pi05_piper_* configs) and the robot factory
(cameras: robot_common.cameras.make_cameras)."""

from robot_common.recorder import image_feature
from robot_common.recorder import vector_feature

JOINTS = ["joint_1", "joint_2", "joint_3", "joint_4", "joint_5", "joint_6", "gripper"]


def features(image_hw=(480, 640)) -> dict:
    return {
        "observation.state": vector_feature(7, JOINTS),
        "action": vector_feature(7, JOINTS),
        "observation.images.base": image_feature((*image_hw, 3)),
        "observation.images.wrist": image_feature((*image_hw, 3)),
    }


def make_robot(sim: bool, can_name: str = "can0", *, interface: str = "socketcan", leader: bool = False):
    """The follower arm: piper_sdk on `can_name` over the python-can `interface`.

    `sim` alone: the same driver over an in-process virtual CAN bus talking to the simulated arm (`leader` adds a
    scripted teaching arm on that bus, for collection). `sim` with a non-default `interface` (virtual /
    udp_multicast): connect to a simulator already running there (`python -m robot_piper.can_sim`)."""
    if sim and interface == "socketcan":
        from robot_piper.sim import SimulatedPiper

        return SimulatedPiper(leader=leader)
    from robot_piper.driver import PiperDriver

    return PiperDriver(can_name, interface=interface)
