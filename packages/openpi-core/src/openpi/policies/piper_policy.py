"""AgileX Piper (6 joints + gripper = 7-d state and actions)."""

from openpi.policies.common import SingleArmInputs
from openpi.policies.common import SliceOutputs

PIPER_DIM = 7


def PiperInputs() -> SingleArmInputs:  # a transform "class" like upstream's
    return SingleArmInputs(state_dim=PIPER_DIM, robot="Piper")


def PiperOutputs() -> SliceOutputs:
    return SliceOutputs(PIPER_DIM)
