"""Record Flexiv episodes (both qpos and pose spaces) into a LeRobot dataset.

python -m robot_flexiv.collect --robot-sn Rizon4-xxxx --repo-id flexiv_lerobot_data --num-episodes 50
make collect-flexiv SIM=1 ARGS="--num-episodes 2"
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import tyro

from robot_common.cameras import make_cameras
from robot_common.cli import CollectArgs
from robot_common.cli import collect_robot
from robot_common.rotations import pose7_to_pose9
from robot_flexiv import arm as flexiv_arm
from robot_flexiv import common
from robot_flexiv import kinematics
from robot_flexiv.driver import MotionLimits


@dataclasses.dataclass
class Args(CollectArgs):
    repo_id: str = "flexiv_lerobot_data"
    episode_steps: int = 200
    fps: int = 20
    robot_sn: str = ""
    teach: bool | None = None
    """Kinesthetic teaching: the arm is compliant and hand-guided, nothing is commanded, and action[t] is the
    state at t+1. Default: on for the real robot, off in --sim (a scripted leader commands the simulated arm);
    `--teach True --sim` simulates the hand moving the arm."""
    motion: MotionLimits = dataclasses.field(default_factory=MotionLimits)
    """Teach mode: --motion.teach-stiffness (fraction of the nominal joint stiffness, 0 = free-floating)."""


def main(args: Args) -> int:
    teach = (not args.sim) if args.teach is None else args.teach
    if not args.sim and not teach:
        raise ValueError("--teach False on the real Flexiv: collection is kinesthetic (hand-guided); drop the flag")
    # Collection works in joint space; both spaces are recorded in every frame.
    arm = flexiv_arm.make_arm("qpos", args.sim, args.robot_sn, teach=teach, motion=args.motion)
    arm.connect()
    hw = args.cameras.hw
    if args.sim:
        from robot_flexiv.sim import scripted_leader_qpos

        script = scripted_leader_qpos()
        if teach:  # the "hand" moves the simulated arm; the leader reads where it is

            def leader(t):
                arm.backend.move_joints(script(t)[:7])
                arm.backend.move_gripper(script(t)[7])
                return arm.qpos()
        else:
            leader = script
    else:  # kinesthetic teaching: the leader is the arm itself, moved by hand
        leader = lambda t: arm.qpos()
    cameras = make_cameras(arm, args.cameras, args.sim)

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

    next_state = {"action.qpos": "observation.state.qpos", "action.pose": "observation.state.pose"} if teach else None
    return collect_robot(
        arm,
        cameras,
        leader,
        args,
        features=common.features(hw),
        robot_type="flexiv_rizon",
        vectors=vectors,
        next_state_actions=next_state,
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(tyro.cli(Args))
