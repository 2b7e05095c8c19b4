"""Chunk executors (openpi_client.rtc) against fake policies with controlled latency, driven by the real Runtime."""

import threading
import time

import numpy as np
import pytest

from openpi_client import base_policy
from openpi_client.rtc import DelayEstimator
from openpi_client.rtc import PolicyServerLostError
from openpi_client.rtc import make_executor
from openpi_client.runtime import environment as _environment
from openpi_client.runtime import runtime as _runtime
from openpi_client.runtime.agents import policy_agent

HZ = 50.0


class LinePolicy(base_policy.BasePolicy):
    """A 1-step-per-tick line from the observed position: chunk[i] = position + 1 + i. The policy is always right,
    so executed actions must read 0, 1, 2, ... with repeats only where the executor holds, never a skip."""

    def __init__(self, horizon=10, latency=0.0):
        self.horizon, self.latency = horizon, latency
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def infer(self, obs):
        with self.lock:
            first = not self.requests
            self.requests.append(dict(obs))
        time.sleep(self.latency if not first else 0.0)
        start = obs["position"] + 1
        return {"actions": (start + np.arange(self.horizon, dtype=np.float32))[:, None].repeat(2, axis=1)}


class StepEnv(_environment.Environment):
    def __init__(self):
        self.k, self.position, self.actions = 0, -1.0, []

    def reset(self):
        self.k, self.position = 0, -1.0

    def is_episode_complete(self):
        return False

    def get_observation(self):
        return {"step": self.k, "position": self.position, "state": np.zeros(2, np.float32)}

    def apply_action(self, action):
        self.actions.append(np.asarray(action["actions"]).copy())
        self.position = float(self.actions[-1][0])
        self.k += 1


def _run(executor, steps, hz=HZ):
    env = StepEnv()
    _runtime.Runtime(env, policy_agent.PolicyAgent(executor), [], max_hz=hz, max_episode_steps=steps).run()
    executor.close()
    return np.stack(env.actions)[:, 0]


def test_delay_estimator_is_the_max_of_recent_delays_rounded_up_to_steps():
    est = DelayEstimator(window=3, initial_steps=2)
    assert est.estimate() == 2
    for d in (1, 5, 1, 1, 1):
        est.observe(d)
    assert est.estimate() == 1  # 5 fell out of the 3-long window
    assert DelayEstimator.steps_for(0.061, 50) == 4 and DelayEstimator.steps_for(0.06, 50) == 3
    assert DelayEstimator.steps_for(0.0, 50) == 0


@pytest.mark.parametrize("kind", ["rtc", "naive"])
def test_async_executor_swaps_chunks_without_jumps_and_measures_the_delay(kind):
    policy = LinePolicy(horizon=12, latency=3.4 / HZ)
    ex = make_executor(kind, policy, control_hz=HZ, execution_horizon=4)
    executed = _run(ex, 60)
    # The policy is always right, so a correct swap index gives exactly 0, 1, 2, ... with no hold and no jump.
    np.testing.assert_array_equal(executed, np.arange(60))
    m = ex.metrics.summary()
    assert m["held_steps"] == 0 and m["swap_jumps"]["n"] >= 8
    assert m["swap_max_jump"] == pytest.approx(1.0)
    # 3.4 control periods of latency: 4 committed actions (the observation's own + 3 more), +-1 for loop jitter.
    delays = ex.metrics.delay_steps[1:]
    assert 3 <= np.median(delays) <= 5
    later = [r for r in policy.requests[1:]]
    if kind == "rtc":
        for req, meta in zip(later, ex.requests, strict=False):
            assert req["inference_delay"] == meta["inference_delay"] and len(req["prev_actions"]) == meta["prev_len"]
            # The not-yet-executed rest of the current chunk, exactly as the server returned it.
            np.testing.assert_array_equal(req["prev_actions"][:, 0], req["position"] + 1 + np.arange(meta["prev_len"]))
        # The estimate sent is the max of the recent measured delays (after the first swap it reflects them).
        assert max(r["inference_delay"] for r in later[3:]) == max(ex.metrics.delay_steps[1:])
    else:
        assert all("prev_actions" not in r and "inference_delay" not in r for r in later)


def test_late_server_holds_the_last_action_and_never_jumps():
    policy = LinePolicy(horizon=6, latency=8.0 / HZ)  # the chunk runs out 3 steps before the next one arrives
    ex = make_executor("rtc", policy, control_hz=HZ, execution_horizon=3)
    executed = _run(ex, 40)
    steps = np.diff(executed)
    assert ex.metrics.held_steps >= 5
    assert set(np.unique(steps)) <= {0.0, 1.0}  # repeats while late, never a skip forward or back
    assert executed[-1] > 10  # and it keeps making progress


def test_slow_mode_stretches_the_tail_before_holding():
    policy = LinePolicy(horizon=8, latency=7.0 / HZ)
    ex = make_executor("rtc", policy, control_hz=HZ, execution_horizon=3, on_late="slow")
    executed = _run(ex, 40)
    assert ex.metrics.slowed_steps > 0
    assert set(np.unique(np.diff(executed))) <= {0.0, 1.0}


def test_sync_executor_executes_the_horizon_then_blocks_for_the_next_chunk():
    policy = LinePolicy(horizon=10, latency=0.0)
    ex = make_executor("sync", policy, control_hz=200, execution_horizon=4)
    executed = _run(ex, 12, hz=200)
    assert [r["step"] for r in policy.requests] == [0, 4, 8]
    np.testing.assert_array_equal(executed, np.arange(12))


def test_temporal_ensemble_averages_overlapping_predictions():
    class Offset(LinePolicy):
        """Every chunk is the line plus its own offset: chunk j predicts k + 10 j."""

        def infer(self, obs):
            out = super().infer(obs)
            out["actions"] = out["actions"] + 10.0 * (len(self.requests) - 1)
            return out

    policy = Offset(horizon=30, latency=2.0 / HZ)
    ex = make_executor("ensemble", policy, control_hz=HZ, ensemble_coeff=0.5)
    executed = _run(ex, 25)
    np.testing.assert_array_equal(executed[:2], [0, 1])  # only the first chunk covers the first steps
    later = executed[10:] - np.arange(10, 25)
    assert np.all(later > 0) and np.all(later < 10 * len(policy.requests))  # a weighted mean of the chunks
    assert ex.metrics.summary()["inference_delay_steps"]["n"] >= 3


def test_executor_survives_a_failing_server_by_holding():
    class Flaky(LinePolicy):
        def infer(self, obs):
            if self.requests and len(self.requests) < 3:
                self.requests.append(obs)
                raise ConnectionError("server went away")
            return super().infer(obs)

    ex = make_executor("rtc", Flaky(horizon=8), control_hz=HZ, execution_horizon=2)
    executed = _run(ex, 60)
    assert ex.metrics.inference_errors == 2 and ex.metrics.held_steps > 0
    assert set(np.unique(np.diff(executed))) <= {0.0, 1.0}


@pytest.mark.parametrize("kind", ["rtc", "naive", "ensemble"])
def test_a_hanging_server_is_held_then_reported_as_lost(kind):
    """After two chunks the server never answers again: the executor repeats the last action (no jump, no drift) and
    raises PolicyServerLostError once it has held for max_hold_s, instead of holding forever."""

    class Hangs(LinePolicy):
        gate = threading.Event()

        def infer(self, obs):
            if len(self.requests) >= 2:
                self.gate.wait(10)
            return super().infer(obs)

    policy = Hangs(horizon=6)
    ex = make_executor(kind, policy, control_hz=HZ, execution_horizon=2, max_hold_s=0.3)
    env = StepEnv()
    runtime = _runtime.Runtime(env, policy_agent.PolicyAgent(ex), [], max_hz=HZ, max_episode_steps=500)
    start = time.monotonic()
    with pytest.raises(PolicyServerLostError, match="max_hold_s=0.3"):
        runtime.run()
    took = time.monotonic() - start
    Hangs.gate.set()
    ex.close()
    executed = np.stack(env.actions)[:, 0]
    held = int(np.argmax(executed == executed[-1]))  # first step of the final hold
    assert len(executed) < 500 and 0.3 <= took < 1.5
    assert np.all(executed[held:] == executed[-1]) and len(executed) - held >= 0.3 * HZ - 2
    assert ex.metrics.held_steps >= len(executed) - held - 1


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="chunking='fast'"):
        make_executor("fast", LinePolicy(), control_hz=HZ)
    with pytest.raises(ValueError, match="on_late"):
        make_executor("rtc", LinePolicy(), control_hz=HZ, on_late="jump")
    with pytest.raises(ValueError, match="control_hz"):
        make_executor("rtc", LinePolicy(), control_hz=0)
    with pytest.raises(ValueError, match="max_hold_s"):
        make_executor("naive", LinePolicy(), control_hz=HZ, max_hold_s=0)
