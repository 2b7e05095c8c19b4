"""Shared safety layer (robot_common.interface.Robot.command): a far first command is refused unless a
move-to-start is asked for, in which case the arm approaches it at the per-step limit."""

from __future__ import annotations

import numpy as np
import pytest

from robot_common.interface import FarFromStartError
from robot_common.interface import Limits
from robot_common.interface import Robot


class Arm(Robot):
    state_dim = 2
    limits = Limits(np.array([-1.0, 0.0]), np.array([1.0, 0.1]), np.array([0.1, 0.02]))

    def __init__(self):
        self.q = np.zeros(2)
        self.received = []

    def connect(self):
        pass

    def disconnect(self):
        pass

    def state(self):
        return self.q.astype(np.float32)

    def _send(self, target):
        self.received.append(target.copy())
        self.q = target.copy()


def test_far_first_command_is_refused_and_nothing_is_sent():
    arm = Arm()
    with pytest.raises(FarFromStartError, match="dim 0.*--move-to-start"):
        arm.command([0.5, 0.0])  # 0.5 rad away, allowed 3 x 0.1
    assert arm.received == []
    arm.command([0.25, 0.05])  # near enough: rate-limited as usual
    np.testing.assert_allclose(arm.received[-1], [0.1, 0.02])
    arm.command([0.9, 0.1])  # later commands are only rate-limited
    np.testing.assert_allclose(arm.received[-1], [0.2, 0.04])


def test_move_to_start_approaches_at_the_per_step_limit():
    arm = Arm()
    arm.allow_move_to_start = True
    for _ in range(6):
        arm.command([0.5, 0.0])
    steps = np.diff(np.stack([np.zeros(2), *arm.received]), axis=0)
    assert np.all(np.abs(steps) <= arm.limits.max_step + 1e-9)
    np.testing.assert_allclose(arm.received[-1], [0.5, 0.0])


def test_a_new_episode_checks_the_start_again():
    arm = Arm()
    arm.command([0.2, 0.0])
    arm.reset_command_reference()
    arm.q = np.array([-0.9, 0.0])
    with pytest.raises(FarFromStartError):
        arm.command([0.2, 0.0])
