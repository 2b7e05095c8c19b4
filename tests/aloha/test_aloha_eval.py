"""aloha_sim.evaluate: the Wilson interval and the step-delayed chunk executors (what runs at which step)."""

import numpy as np
import pytest

from aloha_sim.evaluate import DelayedChunkRunner
from aloha_sim.evaluate import jerk_stats
from aloha_sim.evaluate import wilson_interval

H = 12


class Policy:
    """Chunk k of a request made at step t is the action t*100 + k; records what each request carried."""

    def __init__(self):
        self.requests = []

    def __call__(self, obs):
        self.requests.append(obs)
        t = obs["t"]
        return {"actions": np.array([[t * 100 + k, 0.0] for k in range(H)])}


def run(kind, s, d, steps=30, **kw):
    policy = Policy()
    runner = DelayedChunkRunner(policy, kind=kind, execute_horizon=s, delay=d, **kw)
    runner.reset()
    out = []
    for t in range(steps):
        out.append(runner.act(t, lambda t=t: {"t": t}, state=np.array([-1.0, 0.0]))[0])
    return np.array(out), policy, runner


def test_wilson_interval_matches_published_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 50)[0] == 0.0 and wilson_interval(0, 50)[1] == pytest.approx(0.0713, abs=1e-3)
    assert wilson_interval(50, 50)[1] == pytest.approx(1.0)


def test_sync_holds_still_while_the_model_computes():
    a, policy, _ = run("sync", s=4, d=2, steps=12)
    # hold (start state) for 2 steps, chunk of t=0 from index 0 for 4 steps, hold 2 steps, chunk of t=6 ...
    np.testing.assert_array_equal(a, [-1, -1, 0, 1, 2, 3, 3, 3, 600, 601, 602, 603])
    assert [r["t"] for r in policy.requests] == [0, 6]


def test_naive_keeps_the_old_chunk_for_d_steps_then_switches_at_index_d():
    a, policy, runner = run("naive", s=4, d=2, steps=12)
    # the first chunk runs from index 0 once ready; a request every s steps, its chunk used d steps later from
    # index d: every chunk executes exactly s actions
    np.testing.assert_array_equal(a, [-1, -1, 0, 1, 2, 3, 402, 403, 404, 405, 802, 803])
    assert [r["t"] for r in policy.requests] == [0, 4, 8]
    assert "prev_actions" not in policy.requests[1]
    assert runner.swaps == [2, 6, 10]


def test_rtc_sends_the_unexecuted_actions_and_the_delay():
    a, policy, _ = run("rtc", s=4, d=2, steps=12)
    np.testing.assert_array_equal(a, [-1, -1, 0, 1, 2, 3, 402, 403, 404, 405, 802, 803])
    second = policy.requests[1]
    assert second["t"] == 4 and int(second["inference_delay"]) == 2
    # the chunk of t=0 started executing at step 2, so at step 4 its actions 2.. are not yet executed
    np.testing.assert_array_equal(second["prev_actions"][:, 0], np.arange(2, H))
    assert "prev_actions" not in policy.requests[0]


def test_zero_delay_executors_agree():
    sync, _, _ = run("sync", s=5, d=0)
    naive, _, _ = run("naive", s=5, d=0)
    rtc, _, _ = run("rtc", s=5, d=0)
    np.testing.assert_array_equal(sync, naive)
    np.testing.assert_array_equal(sync, rtc)
    np.testing.assert_array_equal(sync[:7], [0, 1, 2, 3, 4, 500, 501])


def test_ensemble_averages_overlapping_chunks_oldest_weighted_most():
    a, policy, _ = run("ensemble", s=4, d=0, steps=8, m=0.5, stride=3)
    assert [r["t"] for r in policy.requests] == [0, 3, 6]
    w = np.exp(-0.5 * np.arange(2))
    np.testing.assert_allclose(a[:3], [0, 1, 2])
    np.testing.assert_allclose(a[3], (w[0] * 3 + w[1] * 300) / w.sum())


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="executor"):
        DelayedChunkRunner(Policy(), kind="fast", execute_horizon=4, delay=0)
    with pytest.raises(ValueError, match="delay"):
        DelayedChunkRunner(Policy(), kind="rtc", execute_horizon=4, delay=-1)


def test_jerk_is_the_second_difference():
    a = np.array([[0.0], [0.0], [1.0], [3.0]])
    s = jerk_stats(a)
    assert s["jerk_mean"] == pytest.approx(1.0) and s["jerk_max"] == pytest.approx(1.0)
