"""Training-time RTC in PyTorch (PI0Pytorch.compute_loss with config.rtc_max_delay / delay=) against the JAX
Pi0.compute_loss on the upstream-written tiny pi0 and pi0.5 (golden params), and the delay distribution."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from openpi.models import model as _model
from openpi.models import pi0_config
from openpi.models_pytorch.convert import jax_params_to_torch_state_dict
from openpi.models_pytorch.pi0_pytorch import PI0Pytorch

D = 4
H = 10


def _cfg(pi05: bool, rtc_max_delay: int = D):
    return pi0_config.Pi0Config(
        pi05=pi05,
        dtype="float32",
        paligemma_variant="dummy",
        action_expert_variant="dummy",
        action_horizon=H,
        max_token_len=64 if pi05 else 48,
        vision_variant="tiny",
        paligemma_vocab_size=1024,
        rtc_max_delay=rtc_max_delay,
    )


def _T(x):
    return torch.as_tensor(np.asarray(x))


def _jax_delay(rng, batch: int, max_delay: int):
    """The delays Pi0.compute_loss(rng, ...) draws (same key path and distribution)."""
    _, _, time_rng = jax.random.split(rng, 3)
    logits = jnp.arange(max_delay - 1, -1, -1, dtype=jnp.float32)
    return np.asarray(jax.random.categorical(jax.random.fold_in(time_rng, 1), logits, shape=(batch,)))


@pytest.fixture(scope="module", params=[False, True], ids=["pi0", "pi05"])
def models(request, golden_dir):
    pi05 = request.param
    name = "pi05_tiny" if pi05 else "pi0_tiny"
    cfg = _cfg(pi05)
    params = _model.restore_params(golden_dir / name / "params")
    jax_model = cfg.load(params)
    torch_model = PI0Pytorch(cfg)
    torch_model.load_state_dict(jax_params_to_torch_state_dict(params, cfg))
    mi, v = np.load(golden_dir / "model_inputs.npz"), np.load(golden_dir / name / "vectors.npz")
    obs = _model.Observation.from_dict(
        {
            "image": {k: mi[f"image/{k}"] for k in _model.IMAGE_KEYS},
            "image_mask": {k: mi[f"image_mask/{k}"] for k in _model.IMAGE_KEYS},
            "state": mi["state"],
            "tokenized_prompt": v["obs/tokenized_prompt"],
            "tokenized_prompt_mask": v["obs/tokenized_prompt_mask"],
        }
    )
    obs = jax.tree.map(jnp.asarray, obs)
    tobs = jax.tree.map(_T, _model.preprocess_observation(None, obs, train=False))
    return cfg, jax_model, torch_model, obs, tobs, mi


def test_torch_rtc_loss_matches_jax(models):
    cfg, jax_model, torch_model, obs, tobs, mi = models
    actions, noise, time = mi["actions"], mi["noise"], mi["time"]
    # two rng seeds: one where the JAX model draws two different delays with at least one d > 0, and seed 0
    seeds = [0, next(s for s in range(1, 100) if len(set(_jax_delay(jax.random.key(s), 2, D))) == 2)]
    seen = set()
    for seed in seeds:
        rng = jax.random.key(seed)
        d = _jax_delay(rng, 2, D)
        seen.update(d.tolist())
        lj = np.asarray(jax_model.compute_loss(rng, obs, jnp.asarray(actions), noise=noise, time=time))
        with torch.no_grad():
            lt = torch_model.compute_loss(tobs, _T(actions), noise=_T(noise), time=_T(time), delay=_T(d)).numpy()
        np.testing.assert_allclose(lt, lj, atol=1e-4, rtol=1e-4)
        for b in range(2):  # zero loss on the clean prefix, mean over H == mean over the postfix
            assert (lt[b, : d[b]] == 0).all()
            assert lt[b, d[b] :].min() > 0
            unscaled = lt[b, d[b] :] * (H - d[b]) / H
            np.testing.assert_allclose(lt[b].mean(), unscaled.mean(), rtol=1e-5)
    assert len(seen) >= 2  # exercised more than one delay (incl. d > 0)
    assert max(seen) > 0


def test_delay_zero_is_plain_flow_matching_and_prefix_is_ignored(models):
    cfg, _, torch_model, _, tobs, mi = models
    actions, noise, time = _T(mi["actions"]), _T(mi["noise"]), _T(mi["time"])
    plain = PI0Pytorch(dataclasses.replace(cfg, rtc_max_delay=0))
    plain.load_state_dict(torch_model.state_dict())
    with torch.no_grad():
        ref = plain.compute_loss(tobs, actions, noise=noise, time=time)
        zero = torch_model.compute_loss(tobs, actions, noise=noise, time=time, delay=torch.zeros(2, dtype=torch.long))
        np.testing.assert_allclose(zero.numpy(), ref.numpy(), atol=1e-5)
        # with d = 3 the noise on the first 3 actions is irrelevant (they are given clean at time 0)
        d = torch.tensor([3, 3])
        a = torch_model.compute_loss(tobs, actions, noise=noise, time=time, delay=d)
        noise2 = noise.clone()
        noise2[:, :3] = torch.randn_like(noise2[:, :3]) * 5
        b = torch_model.compute_loss(tobs, actions, noise=noise2, time=time, delay=d)
    np.testing.assert_allclose(a[:, 3:].numpy(), b[:, 3:].numpy(), atol=1e-5)
    assert not np.allclose(a[:, 3:].numpy(), ref[:, 3:].numpy(), atol=1e-4)  # the clean prefix is really seen


def test_sampled_delays_follow_exp_distribution(models):
    _, _, torch_model, _, tobs, mi = models
    g = torch.Generator().manual_seed(0)
    d = torch_model.sample_rtc_delay(20_000, generator=g).numpy()
    p = np.exp(np.arange(D - 1, -1, -1, dtype=np.float64))
    p /= p.sum()
    np.testing.assert_allclose(np.bincount(d, minlength=D) / d.size, p, atol=0.01)
    assert d.min() == 0 and d.max() == D - 1
    # without an explicit delay the model draws one per example (from torch's global RNG) when rtc_max_delay > 0
    kw = dict(noise=_T(mi["noise"]), time=_T(mi["time"]))
    with torch.no_grad():
        torch.manual_seed(5)
        implicit = torch_model.compute_loss(tobs, _T(mi["actions"]), **kw)
        torch.manual_seed(5)
        d = torch_model.sample_rtc_delay(2)
        explicit = torch_model.compute_loss(tobs, _T(mi["actions"]), delay=d, **kw)
    np.testing.assert_array_equal(implicit.numpy(), explicit.numpy())
    with pytest.raises(ValueError, match="delay"):
        torch_model.compute_loss(tobs, _T(mi["actions"]), delay=torch.tensor([H, 0]))


def test_trainer_delays_are_rank_independent_and_follow_the_distribution():
    from openpi.training.train_pytorch import rtc_delays

    full = rtc_delays(seed=1, step=3, global_batch=8, max_delay=D, rank=0, world=1)
    halves = [rtc_delays(seed=1, step=3, global_batch=8, max_delay=D, rank=r, world=2) for r in range(2)]
    assert torch.equal(torch.cat(halves), full)
    assert not torch.equal(full, rtc_delays(seed=1, step=4, global_batch=8, max_delay=D, rank=0, world=1))
    many = torch.cat([rtc_delays(0, s, 1000, D, 0, 1) for s in range(10)]).numpy()
    p = np.exp(np.arange(D - 1, -1, -1, dtype=np.float64))
    np.testing.assert_allclose(np.bincount(many, minlength=D) / many.size, p / p.sum(), atol=0.015)
