"""Flexiv Rizon (7 joints + gripper): qpos mode = 8-d, pose mode = xyz + rotation-6D + gripper = 10-d."""

from typing import Literal

from openpi.policies.common import SingleArmInputs
from openpi.policies.common import SliceOutputs

FLEXIV_DIMS = {"qpos": 8, "pose": 10}
Mode = Literal["qpos", "pose"]


def _dim(mode: str) -> int:
    if mode not in FLEXIV_DIMS:
        raise ValueError(f"Flexiv mode {mode!r}: use 'qpos' or 'pose'")
    return FLEXIV_DIMS[mode]


def FlexivInputs(mode: Mode) -> SingleArmInputs:
    return SingleArmInputs(state_dim=_dim(mode), robot=f"Flexiv ({mode})")


def FlexivOutputs(mode: Mode) -> SliceOutputs:
    return SliceOutputs(_dim(mode))
