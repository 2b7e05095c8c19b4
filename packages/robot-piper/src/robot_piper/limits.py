"""Piper joint/gripper limits and the poses the simulator and tests use (no SDK import)."""

from __future__ import annotations

import numpy as np

from robot_common.interface import Limits

# piper_sdk.piper_param limits (rad) for joints 1-6, then the gripper opening (m)
JOINT_LOW = np.array([-2.6179, 0.0, -2.967, -1.745, -1.22, -2.09439, 0.0])
JOINT_HIGH = np.array([2.6179, 3.14, 0.0, 1.745, 1.22, 2.09439, 0.07])
# largest change our safety layer lets through per control step (rad / m)
MAX_STEP = np.array([0.2] * 6 + [0.02])
# a ready pose inside the limits: the simulated arm starts here
HOME = np.array([0.0, 0.5, -0.5, 0.0, 0.3, 0.0, 0.05])

PIPER_LIMITS = Limits(JOINT_LOW, JOINT_HIGH, MAX_STEP)
