"""Run a served policy on the Flexiv arm in pose or qpos mode.

python -m robot_flexiv.run --mode pose --robot-sn Rizon4-xxxx --host <server> --port 8000
"""

from __future__ import annotations

import dataclasses
import logging

import tyro

from robot_common.interface import SimCamera
from robot_common.policy_loop import RobotEnvironment
from robot_common.policy_loop import run_policy
from robot_flexiv import common


@dataclasses.dataclass
class Args:
    mode: str = "pose"
    """pose (pi05_flexiv_pose_train) or qpos (pi05_flexiv_qpos_train)."""
    host: str = "127.0.0.1"
    port: int = 8000
    prompt: str = "pick up the cube"
    action_horizon: int | None = None
    control_hz: float = 20.0
    max_steps: int = 400
    robot_sn: str = ""
    api_key: str | None = None
    sim: bool = False


def main(args: Args):
    arm = common.make_arm(args.mode, args.sim, args.robot_sn)
    arm.connect()
    try:
        if args.sim:
            cameras = {"base": SimCamera(arm, seed=1), "wrist": SimCamera(arm, seed=2)}
        else:
            from robot_common.cameras import OpenCVCamera

            cameras = {"base": OpenCVCamera(0), "wrist": OpenCVCamera(2)}
        env = RobotEnvironment(arm, cameras, args.prompt, max_steps=args.max_steps)
        run_policy(
            env,
            host=args.host,
            port=args.port,
            action_horizon=args.action_horizon,
            control_hz=args.control_hz,
            api_key=args.api_key,
        )
        return env
    finally:
        arm.disconnect()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(tyro.cli(Args))
