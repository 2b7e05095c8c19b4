"""Run a served policy on the Flexiv arm in pose or qpos mode.

python -m robot_flexiv.run --mode pose --robot-sn Rizon4-xxxx --host <server> --port 8000
"""

from __future__ import annotations

import dataclasses
import logging

import tyro

from robot_common.cameras import make_cameras
from robot_common.cli import RunArgs
from robot_common.cli import run_robot
from robot_flexiv import arm as flexiv_arm
from robot_flexiv.driver import MotionLimits


@dataclasses.dataclass
class Args(RunArgs):
    mode: str = "pose"
    """pose (pi05_flexiv_pose_train) or qpos (pi05_flexiv_qpos_train)."""
    control_hz: float = 20.0
    max_steps: int = 400
    robot_sn: str = ""
    motion: MotionLimits = dataclasses.field(default_factory=MotionLimits)
    """Velocity / acceleration limits sent with every command (--motion.max-joint-vel 0.3, ...)."""


def main(args: Args):
    arm = flexiv_arm.make_arm(args.mode, args.sim, args.robot_sn, motion=args.motion)
    return run_robot(arm, lambda r: make_cameras(r, args.cameras, args.sim), args)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(tyro.cli(Args))
