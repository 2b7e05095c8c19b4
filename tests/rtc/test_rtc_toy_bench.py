"""Reduced RTC toy benchmark (bench/rtc_toy.py) through the real sampler `openpi.models_pytorch.rtc`: with no
previous chunk every method equals plain sampling, and with a simulated delay d = 2 inference-time RTC ("vjp")
cuts the boundary jump at chunk swaps vs naive async switching."""

import pathlib
import sys

import numpy as np
import pytest
import torch

from openpi.models_pytorch import rtc as rtc_t

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
import rtc_toy as toy


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    states, chunks, norm = toy.make_dataset(400, seed=1)
    model = toy.train_policy(states, chunks, steps=700, batch=256, seed=1)
    return model, norm


def test_no_previous_chunk_is_plain_sampling():
    torch.manual_seed(0)
    for dmax in (0, 5):
        model = toy.ToyFlowPolicy(width=64, emb=32, rtc_max_delay=dmax).eval()
        obs = toy.ToyObservation(torch.randn(3, toy.STATE_DIM))
        z = torch.randn(3, toy.H, toy.ACTION_DIM)
        base = model.sample_actions("cpu", obs, noise=z)
        for method in ("vjp", "identity", "prefix"):
            out = rtc_t.sample_actions_rtc(
                model, "cpu", obs, prev_chunk=torch.zeros(3, 0, 2), inference_delay=0, method=method, noise=z
            )
            torch.testing.assert_close(out, base, atol=1e-6, rtol=0)
        # with a previous chunk the guided sample differs (the test above is not vacuous)
        out = rtc_t.sample_actions_rtc(
            model, "cpu", obs, prev_chunk=torch.ones(3, 8, 2), inference_delay=2, method="vjp", noise=z
        )
        assert (out - base).abs().max() > 1e-3


def test_per_token_time_equals_scalar_time():
    model = toy.ToyFlowPolicy(width=64, emb=32).eval()
    obs = toy.ToyObservation(torch.randn(2, toy.STATE_DIM))
    x = torch.randn(2, toy.H, toy.ACTION_DIM)
    prefix = model.prepare_prefix(obs)
    v1 = model.velocity(prefix, obs, x, torch.full((2,), 0.3))
    v2 = model.velocity(prefix, obs, x, torch.full((2, toy.H), 0.3))
    torch.testing.assert_close(v1, v2, atol=0, rtol=0)


def test_rtc_cuts_the_boundary_jump_at_delay_2(trained):
    model, norm = trained
    res = {m: toy.metrics(toy.rollout(model, norm, m, 2, n=150, seed=5, steps=64)) for m in ("naive", "vjp")}
    assert res["naive"]["jump_max"] > 1.5 * res["vjp"]["jump_max"], res
    assert res["naive"]["jump_mean"] > 1.5 * res["vjp"]["jump_mean"], res
    assert np.isfinite(res["vjp"]["jerk_swap"]) and res["vjp"]["progress"] > 0.4, res


def test_delay_simulation_executes_old_prefix_then_new_chunk(trained):
    model, norm = trained
    with pytest.raises(ValueError, match="execution horizon"):
        toy.rollout(model, norm, "naive", 5, n=2, s=4)
    r = toy.rollout(model, norm, "naive", 3, n=4, seed=0, s=8, steps=24)
    assert r.swaps == [3, 11, 19] and r.act.shape == (4, 24, 2)
    np.testing.assert_allclose(np.diff(r.pos, axis=1), r.act, atol=1e-12)
