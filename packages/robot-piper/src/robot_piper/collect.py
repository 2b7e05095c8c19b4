"""Record teleoperated Piper episodes (master arm -> follower) into a LeRobot dataset.

The action is the teaching arm's joint/gripper command as seen on the CAN bus (piper_sdk GetArmJointCtrl /
GetArmGripperCtrl); with --sim a scripted teaching arm sends those frames to the simulated follower.

python -m robot_piper.collect --repo-id piper_lerobot_data --num-episodes 50 --task "pick up the cube"
make collect-piper SIM=1 ARGS="--num-episodes 2"
"""

from __future__ import annotations

import dataclasses
import logging

import tyro

from robot_common.cameras import make_cameras
from robot_common.cli import CollectArgs
from robot_common.cli import collect_robot
from robot_piper import common


@dataclasses.dataclass
class Args(CollectArgs):
    repo_id: str = "piper_lerobot_data"
    can_name: str = "can0"
    """CAN port (SocketCAN name), or the channel of a simulator (e.g. 239.74.163.2 with udp_multicast)."""
    can_interface: str = "socketcan"
    """python-can interface: socketcan (real arm), slcan; udp_multicast/virtual with --sim: an external simulator."""


def main(args: Args) -> int:
    robot = common.make_robot(args.sim, args.can_name, interface=args.can_interface, leader=True)
    robot.connect()
    hw = args.cameras.hw
    cameras = make_cameras(robot, args.cameras, args.sim)
    robot.wait_for_master()
    leader = lambda t: robot.master_targets()
    return collect_robot(
        robot,
        cameras,
        leader,
        args,
        features=common.features(hw),
        robot_type="piper",
        vectors=lambda target: {"observation.state": robot.state(), "action": target},
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(tyro.cli(Args))
