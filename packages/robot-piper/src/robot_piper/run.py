"""Run a served policy on the Piper arm.

python scripts/serve_policy.py policy:checkpoint --policy.config=pi05_piper_pick_cube --policy.dir=...
python -m robot_piper.run --host <server> --port 8000 --prompt "pick up the cube"
"""

from __future__ import annotations

import dataclasses
import logging

import tyro

from robot_common.policy_loop import RobotEnvironment
from robot_common.policy_loop import run_policy
from robot_piper import common


@dataclasses.dataclass
class Args:
    host: str = "127.0.0.1"
    port: int = 8000
    prompt: str = "pick up the cube"
    action_horizon: int | None = None
    """Actions executed per chunk (default: the server's action horizon)."""
    control_hz: float = 30.0
    max_steps: int = 600
    num_episodes: int = 1
    can_name: str = "can0"
    api_key: str | None = None
    sim: bool = False


def main(args: Args):
    robot = common.make_robot(args.sim, args.can_name)
    robot.connect()
    try:
        env = RobotEnvironment(robot, common.make_cameras(robot, args.sim), args.prompt, max_steps=args.max_steps)
        run_policy(
            env,
            host=args.host,
            port=args.port,
            action_horizon=args.action_horizon,
            control_hz=args.control_hz,
            num_episodes=args.num_episodes,
            api_key=args.api_key,
        )
        return env
    finally:
        robot.disconnect()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(tyro.cli(Args))
