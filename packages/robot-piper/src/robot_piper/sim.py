"""`--sim`: the real driver (piper_sdk) on a python-can virtual channel with the simulated arm on the same
channel, optionally a scripted teaching (master) arm for collection, and simulated cameras."""

from __future__ import annotations

import itertools
import os

from robot_piper.can_sim import SimLeaderArm
from robot_piper.can_sim import SimPiperArm
from robot_piper.driver import PiperDriver

_ids = itertools.count()


class SimulatedPiper(PiperDriver):
    """`PiperDriver` on its own virtual CAN channel; connect() starts the simulated arm (and leader), disconnect()
    stops them. Every instance gets a fresh channel, so simulators never hear each other."""

    def __init__(self, *, leader: bool = False, speed_percent: int = 50, channel: str | None = None, **arm_kwargs):
        channel = channel or f"piper_sim_{os.getpid()}_{next(_ids)}"
        super().__init__(channel, speed_percent, interface="virtual")
        self.arm = SimPiperArm(channel, **arm_kwargs)
        self.leader = SimLeaderArm(channel) if leader else None

    def connect(self) -> None:
        self.arm.start()
        try:
            super().connect()
        except Exception:
            self.arm.stop()
            raise
        if self.leader is not None:
            self.leader.start()

    def disconnect(self) -> None:
        if self.leader is not None:
            self.leader.stop()
        super().disconnect()
        self.arm.stop()
