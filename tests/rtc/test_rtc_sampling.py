"""RTC samplers on the tiny pi0.5 (JAX and PyTorch): mask schedule, guidance weights, no-op and pull toward the
previous chunk, training-time prefix overwrite, and the Policy's request fields."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from openpi.models import model as _model
from openpi.models import pi0_config
from openpi.models import rtc
from openpi.models.pi0_config import TINY
from openpi.models_pytorch import rtc as rtc_t
from openpi.models_pytorch.convert import jax_params_to_torch_state_dict
from openpi.models_pytorch.pi0_pytorch import PI0Pytorch


def test_prefix_weights_and_guidance_weight():
    np.testing.assert_allclose(
        rtc.prefix_weights(2, 6, 10, "linear"), [1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0, 0, 0], atol=1e-6
    )
    w = rtc.prefix_weights(3, 8, 10)
    assert (w[:3] == 1).all() and (w[8:] == 0).all() and (np.diff(w[2:9]) <= 0).all()
    assert (rtc.prefix_weights(2, 6, 10, "zeros") == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]).all()
    # n = 10, beta = 5: 5, 5 (9.11 clipped), 4.25, 2.76, 2.17, 2.00, ...
    ws = [rtc.guidance_weight(1 - i / 10, 5.0) for i in range(10)]
    np.testing.assert_allclose(ws[:6], [5, 5, 4.25, 2.7619, 2.1667, 2.0], atol=1e-3)


@pytest.fixture(scope="module")
def tiny():
    cfg = pi0_config.Pi0Config(pi05=True, action_horizon=8, **{**TINY, "max_token_len": 16})
    model = cfg.create(jax.random.key(3))
    obs = cfg.fake_obs(1)
    noise = jax.random.normal(jax.random.key(1), (1, 8, 32))
    prev = jax.random.normal(jax.random.key(2), (1, 6, 32)) * 0.5
    return cfg, model, obs, noise, prev


def test_empty_prev_chunk_is_plain_sampling(tiny):
    cfg, model, obs, noise, _ = tiny
    base = model.sample_actions(None, obs, noise=noise)
    for method in ("vjp", "identity", "prefix"):
        out = rtc.sample_actions_rtc(
            model, None, obs, prev_chunk=jnp.zeros((1, 0, 32)), inference_delay=0, method=method, noise=noise
        )
        np.testing.assert_allclose(out, base, atol=1e-5)


def test_guidance_pulls_the_overlap_toward_the_previous_chunk(tiny):
    cfg, model, obs, noise, prev = tiny
    base = np.asarray(model.sample_actions(None, obs, noise=noise))
    d = 3
    w = rtc.prefix_weights(d, 6, 8)
    for method in ("vjp", "identity"):
        out = np.asarray(
            rtc.sample_actions_rtc(model, None, obs, prev_chunk=prev, inference_delay=d, method=method, noise=noise)
        )
        err_base = np.abs(base[0, :6] - np.asarray(prev)[0]).mean(-1) @ w[:6]
        err_rtc = np.abs(out[0, :6] - np.asarray(prev)[0]).mean(-1) @ w[:6]
        assert err_rtc < 0.5 * err_base, (method, err_rtc, err_base)
        np.testing.assert_allclose(out[0, 6:].std(), base[0, 6:].std(), rtol=0.5)  # the tail stays a free sample
    out = np.asarray(
        rtc.sample_actions_rtc(model, None, obs, prev_chunk=prev, inference_delay=d, method="prefix", noise=noise)
    )
    np.testing.assert_array_equal(out[0, :d], np.asarray(prev)[0, :d])


def test_pytorch_rtc_matches_jax(tiny):
    cfg, model, obs, noise, prev = tiny
    from flax import nnx

    tm = PI0Pytorch(cfg)
    tm.load_state_dict(jax_params_to_torch_state_dict(nnx.state(model).to_pure_dict(), cfg))
    tobs = jax.tree.map(lambda x: torch.as_tensor(np.asarray(x)), _model.preprocess_observation(None, obs))
    for method in ("vjp", "identity", "prefix"):
        a_j = np.asarray(
            rtc.sample_actions_rtc(model, None, obs, prev_chunk=prev, inference_delay=2, method=method, noise=noise)
        )
        a_t = rtc_t.sample_actions_rtc(
            tm,
            "cpu",
            tobs,
            prev_chunk=torch.as_tensor(np.asarray(prev)),
            inference_delay=2,
            method=method,
            noise=torch.as_tensor(np.asarray(noise)),
        )
        np.testing.assert_allclose(a_t.numpy(), a_j, atol=2e-4)
