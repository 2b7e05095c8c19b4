"""Record Flexiv episodes (both qpos and pose spaces) into a LeRobot dataset.

python -m robot_flexiv.collect --robot-sn Rizon4-xxxx --repo-id flexiv_lerobot_data --num-episodes 50
make collect-flexiv SIM=1 ARGS="--num-episodes 2"
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import tyro

from robot_common.cli import CollectArgs
from robot_common.cli import collect_robot
from robot_common.rotations import pose7_to_pose9
from robot_flexiv import common
from robot_flexiv import kinematics


@dataclasses.dataclass
class Args(CollectArgs):
    repo_id: str = "flexiv_lerobot_data"
    episode_steps: int = 200
    fps: int = 20
    robot_sn: str = ""


def main(args: Args) -> int:
    arm = common.make_arm("qpos", args.sim, args.robot_sn)  # collection commands joints; both spaces are recorded
    arm.connect()
    hw = (args.image_height, args.image_width)
    if args.sim:
        from robot_flexiv.sim import scripted_leader_qpos

        leader = scripted_leader_qpos()
    else:  # kinesthetic teaching: the leader is the arm itself
        leader = lambda t: arm.qpos()  # noqa: E731
    cameras = common.make_cameras(arm, args.sim, hw)

    def vectors(target):
        p, r = kinematics.fk(target[:7]) if args.sim else (None, None)
        target_pose = (
            np.r_[p, r[:, 0], r[:, 1], target[7]]
            if args.sim
            else np.r_[pose7_to_pose9(arm.backend.tcp_pose7()), target[7]]
        )
        return {
            "observation.state.qpos": arm.qpos(),
            "action.qpos": target,
            "observation.state.pose": arm.pose(),
            "action.pose": target_pose,
        }

    return collect_robot(
        arm, cameras, leader, args, features=common.features(hw), robot_type="flexiv_rizon", vectors=vectors
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(tyro.cli(Args))
