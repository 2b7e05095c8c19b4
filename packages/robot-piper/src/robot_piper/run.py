"""Run a served policy on the Piper arm.

python scripts/serve_policy.py policy:checkpoint --policy.config=pi05_piper_pick_cube --policy.dir=...
python -m robot_piper.run --host <server> --port 8000 --prompt "pick up the cube"
"""

from __future__ import annotations

import dataclasses
import logging

import tyro

from robot_common.cameras import make_cameras
from robot_common.cli import RunArgs
from robot_common.cli import run_robot
from robot_piper import common


@dataclasses.dataclass
class Args(RunArgs):
    can_name: str = "can0"
    """CAN port (SocketCAN name), or the channel of a simulator (e.g. 239.74.163.2 with udp_multicast)."""
    can_interface: str = "socketcan"
    """python-can interface: socketcan (real arm), slcan; udp_multicast/virtual with --sim: an external simulator."""


def main(args: Args):
    robot = common.make_robot(args.sim, args.can_name, interface=args.can_interface)
    return run_robot(robot, lambda r: make_cameras(r, args.cameras, args.sim), args)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(tyro.cli(Args))
