"""Shared safety layer (robot_common.interface.Robot.command): a far first command is refused unless a
move-to-start is asked for, in which case the arm approaches it at the per-step limit."""

from __future__ import annotations

import logging

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


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_limit_and_step_clamps_are_counted_per_dim_and_kind():
    arm = Arm()
    arm.allow_move_to_start = True
    arm.dim_names = ("joint", "gripper")
    arm.command([0.05, 0.5])  # gripper beyond 0.1 -> 0.1 (limit), then 0.1 - 0 > 0.02 (step) -> 0.02
    arm.command([0.1, 0.1])  # gripper step again (0.02 -> 0.1) -> 0.04; joint within both
    arm.command([-3.0, 0.06])  # joint below -1 (limit), then -1 - 0.1 beyond 0.1 (step); gripper +0.02: not clamped
    arm.command([0.0, 0.06])  # nothing clamped
    np.testing.assert_array_equal(arm.clamp_counts["limit"], [1, 1])
    np.testing.assert_array_equal(arm.clamp_counts["step"], [1, 2])
    s = arm.clamp_stats.summary()
    assert s["limit"] == {"joint": 1, "gripper": 1} and s["step"] == {"joint": 1, "gripper": 2}
    assert s["limit_commands"] == 2 and s["step_commands"] == 3
    np.testing.assert_allclose(arm.received, [[0.05, 0.02], [0.1, 0.04], [0.0, 0.06], [0.0, 0.06]])


def test_clamp_log_lines_are_rate_limited_and_account_for_every_clamp(caplog):
    arm = Arm()  # default names dim_0, dim_1
    arm.allow_move_to_start = True
    clock = Clock()
    arm.clamp_stats._clock = clock

    def lines():
        return [r.message for r in caplog.records if "clamp:" in r.message]

    with caplog.at_level(logging.WARNING, logger="robot_common"):
        arm.command([0.0, 0.5])  # limit (dim_1 0.5 -> 0.1) + step (dim_1 0.1 -> 0.02): both logged at once
        assert len(lines()) == 2
        assert "joint/gripper limit clamp: dim_1 0.5000 -> 0.1000 (1 clamped command(s)" in lines()[0]
        assert "per-step (velocity) limit clamp: dim_1 0.1000 -> 0.0200" in lines()[1]
        for _ in range(29):  # 30 Hz for ~1 s: every command over the limit, the first 3 also over the step
            clock.t += 1 / 30
            arm.command([0.0, 0.5])
        assert len(lines()) == 2
        clock.t = 101.0  # 1 s after the first lines: one line per kind counting the clamps since
        arm.command([2.0, 0.5])
        new = lines()[2:]
        assert len(new) == 2 and all(r.levelno == logging.WARNING for r in caplog.records)
        assert "limit clamp: dim_0 2.0000 -> 1.0000, dim_1 0.5000 -> 0.1000 (30 clamped command(s)" in new[0]
        assert "dims ['dim_0', 'dim_1']; 31 in total" in new[0]
        assert "(velocity) limit clamp: dim_0 1.0000 -> 0.1000 (4 clamped command(s)" in new[1]
        assert "dims ['dim_0', 'dim_1']; 5 in total" in new[1]
        # clamps cut off by the rate limit are reported at the episode boundary
        clock.t += 0.1
        arm.command([-1.0, 0.1])  # step clamp: dim_0 (0.1 -> -1.0), not logged yet
        assert len(lines()) == 4
        arm.reset_command_reference()
        new = lines()[4:]
        assert (
            len(new) == 1
            and "earlier clamps not logged yet (1 clamped command(s)" in new[0]
            and "dims ['dim_0']" in new[0]
        )
    np.testing.assert_array_equal(arm.clamp_counts["limit"], [1, 31])
    np.testing.assert_array_equal(arm.clamp_counts["step"], [2, 4])
