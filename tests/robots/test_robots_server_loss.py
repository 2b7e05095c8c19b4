"""Losing the policy server mid-run (real websocket server on loopback, simulated Rizon in qpos mode, RTC executor):
the arm holds its last command, nothing jumps, and the client stops with PolicyServerLostError after max_hold_s
instead of waiting forever. Two ways to lose it: the server hangs (never answers), or it shuts down."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from openpi.serving.websocket_policy_server import serve_in_thread
from openpi_client import base_policy
from openpi_client.rtc import PolicyServerLostError
from robot_common.cameras import make_cameras
from robot_common.cli import RunArgs
from robot_common.cli import run_robot
from robot_flexiv import arm as flexiv_arm
from robot_flexiv import kinematics

HZ, HORIZON, MAX_HOLD_S, STEP = 20.0, 8, 0.5, 0.01


class TwoChunksThenLost(base_policy.BasePolicy):
    """Answers two requests with a slow ramp away from HOME on joint 1, then is lost (`how`)."""

    def __init__(self, how: str):
        self.how, self.calls, self.release = how, 0, threading.Event()
        self.server = None

    def infer(self, obs):
        self.calls += 1
        if self.calls > 2:
            if self.how == "hang":
                self.release.wait(20)
            else:  # shut the server down from outside the handler, then fail this request
                threading.Thread(target=self.server.shutdown, daemon=True).start()
                raise RuntimeError("server going down")
        if "prev_actions" in obs:  # continue the executing chunk exactly (what RTC inpainting aims for)
            start, first = np.asarray(obs["prev_actions"][0], dtype=np.float64), 0
        else:
            start, first = np.asarray(obs["observation/state"], dtype=np.float64), 1
        ramp = start[None, :].repeat(HORIZON, axis=0)
        ramp[:, 0] += STEP * np.arange(first, first + HORIZON)
        return {"actions": ramp.astype(np.float32)}


@pytest.mark.parametrize("how", ["hang", "shutdown"])
def test_lost_server_holds_the_arm_then_stops_with_a_clear_error(how):
    policy = TwoChunksThenLost(how)
    arm = flexiv_arm.make_arm("qpos", sim=True)
    sent = []
    command = arm.command
    arm.command = lambda target: sent.append(command(target)) or sent[-1]
    args = RunArgs(
        port=0,
        sim=True,
        control_hz=HZ,
        max_steps=10_000,
        chunking="rtc",
        action_horizon=4,
        max_hold_s=MAX_HOLD_S,
    )
    with serve_in_thread(policy, metadata={"action_horizon": HORIZON}) as (server, port):
        policy.server = server
        args.port = port
        start = time.monotonic()
        with pytest.raises(PolicyServerLostError, match="policy server is gone or hangs"):
            run_robot(arm, lambda r: make_cameras(r, args.cameras, True), args)
        took = time.monotonic() - start
        policy.release.set()
    sent = np.stack(sent)
    # Two chunks of 8 with the second one starting mid-way: a handful of moving steps, then a hold of ~max_hold_s.
    assert 6 <= len(sent) <= 40 and took < 6.0, (len(sent), took)
    last = sent[-1]
    held = int(np.flatnonzero(np.any(sent != last, axis=1)).max()) + 1
    assert (len(sent) - held) >= MAX_HOLD_S * HZ - 2  # the arm held the last command for ~max_hold_s
    steps = np.diff(sent[:, 0])
    assert np.all(np.isclose(steps, STEP, atol=1e-5) | np.isclose(steps, 0.0, atol=1e-7)), steps  # ramp, then hold
    assert sent[-1, 0] > kinematics.HOME[0] + 4 * STEP  # it moved along both chunks before the server was lost
    np.testing.assert_allclose(arm.backend.q_target, last[:7], atol=1e-6)  # the arm's target is the held command
