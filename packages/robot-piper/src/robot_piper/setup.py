"""Configure a Piper as the teaching (master) arm or the follower of a master/follower pair (MasterSlaveConfig).

python -m robot_piper.setup --role master --can-name can0      # connect ONLY the arm to configure
python -m robot_piper.setup --role follower --can-name can0
make piper-setup ROLE=follower CAN=can0
python -m robot_piper.setup --role master --sim                 # try it against the simulated arm

Teleoperation wiring: both arms on one CAN bus (one adapter); the master's joint/gripper commands (0x155-0x157,
0x159) go straight to the follower, and `make collect-piper` records them (GetArmJointCtrl) with the follower's
state. The role is stored in the arm; a master switched back to follower needs a power cycle.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Literal

import tyro

from robot_piper.driver import LINKAGE_CODES
from robot_piper.driver import PiperDriver


@dataclasses.dataclass
class Args:
    role: Literal["master", "follower"]
    """master (teaching input arm, 0xFA) or follower (motion output arm, 0xFC)."""
    can_name: str = "can0"
    """CAN port (bring it up first: bash can_activate.sh can0 1000000, ships with piper_sdk)."""
    can_interface: str = "socketcan"
    """python-can interface: socketcan (real arm); virtual / udp_multicast for a simulator."""
    sim: bool = False
    """Configure an in-process simulated arm instead (robot_piper.can_sim), to try the command."""
    timeout_s: float = 3.0
    """How long to wait for the arm to show the new role on the bus."""


def configure(driver: PiperDriver, role: str, timeout_s: float = 3.0, window_s: float = 0.3) -> str:
    """Send the role and check it on the bus: a master sends teaching commands (0x155-0x157) and no feedback, a
    follower sends feedback (0x2A5-0x2A7) and no commands. Returns "ok", or "power-cycle" when the arm still
    shows its old role (expected for master -> follower). Raises TimeoutError when nothing is heard at all."""
    if role not in LINKAGE_CODES:
        raise ValueError(f"role={role!r}: use master or follower")
    piper = driver.open()
    driver.set_role(role)
    time.sleep(0.1)  # frames already in flight
    deadline = time.monotonic() + timeout_s
    heard = False
    while time.monotonic() < deadline:
        t1 = time.time()
        time.sleep(window_s)
        ctrl = piper.GetArmJointCtrl().time_stamp > t1  # a teaching arm's commands on the bus
        fb = piper.GetArmJointMsgs().time_stamp > t1  # an output arm's feedback
        heard = ctrl or fb
        if (role == "master" and ctrl and not fb) or (role == "follower" and fb and not ctrl):
            return "ok"
    if heard:
        return "power-cycle"
    raise TimeoutError(
        f"nothing heard from the Piper on '{driver.can_name}' within {timeout_s:.1f}s: is it powered and the CAN "
        "bus up (bash can_activate.sh can0 1000000)?"
    )


NEXT_STEPS = {
    "master": (
        "This arm is now the TEACHING (master) arm: its motors are limp, move it by hand; it sends its joint and\n"
        "gripper commands (0x155-0x157, 0x159) on the bus instead of feedback.\n"
        "Next: configure the other arm with --role follower, then put both arms on ONE CAN bus (one adapter) and\n"
        "run `make collect-piper ARGS=\"--num-episodes 50 --task '...'\"`."
    ),
    "follower": (
        "This arm is now the FOLLOWER (motion output) arm: it executes the commands on the bus (from the master\n"
        "arm, or from `make run-piper`).\n"
        "Next: with the master configured too, put both arms on ONE CAN bus and run `make collect-piper`.\n"
        "For policy runs (`make run-piper`) disconnect the master arm from the bus."
    ),
}


def main(args: Args) -> int:
    if args.sim:
        from robot_piper.can_sim import SimPiperArm
        from robot_piper.can_sim import leader_trajectory

        arm = SimPiperArm(f"piper_setup_sim_{os.getpid()}", hand=leader_trajectory).start()
        driver = PiperDriver(arm.channel, interface="virtual", timeout_s=args.timeout_s)
    else:
        arm = None
        driver = PiperDriver(args.can_name, interface=args.can_interface, timeout_s=args.timeout_s)
    code = LINKAGE_CODES[args.role]
    print(f"setting the Piper on '{driver.can_name}' to {args.role} (MasterSlaveConfig 0x470: 0x{code:02X}, 0, 0, 0)")
    try:
        result = configure(driver, args.role, args.timeout_s)
    finally:
        driver.disconnect()
        if arm is not None:
            arm.stop()
    if result == "power-cycle":
        print(
            f"The command was sent, but the arm still shows its old role. POWER-CYCLE the arm (switch it off and on)\n"
            f"for the {args.role} role to take effect (required when leaving master mode), then run this again to\n"
            "check. Configure with only this arm on the bus (another master's commands look like this arm's)."
        )
        return 2
    print(f"OK: role {args.role} confirmed on the bus (the arm keeps it across restarts).\n{NEXT_STEPS[args.role]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(tyro.cli(Args)))
