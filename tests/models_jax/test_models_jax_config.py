"""Pi0Config behaviour: variants, LoRA, freeze filters, training-time RTC, fresh-model training signal."""

import dataclasses

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from openpi.models import gemma
from openpi.models import lora
from openpi.models import model as _model
from openpi.models import pi0_config


def _count(cfg, flt):
    model = nnx.eval_shape(lambda: cfg.create(jax.random.key(0)))
    return len(jax.tree.leaves(nnx.state(model, flt)))


def test_defaults_and_validation():
    c = pi0_config.Pi0Config()
    assert (c.max_token_len, c.discrete_state_input, c.action_dim, c.action_horizon) == (48, False, 32, 50)
    c5 = pi0_config.Pi0Config(pi05=True)
    assert (c5.max_token_len, c5.discrete_state_input, c5.model_type) == (200, True, _model.ModelType.PI05)
    with pytest.raises(ValueError, match="Unknown gemma variant"):
        pi0_config.Pi0Config(paligemma_variant="gemma_7b")
    with pytest.raises(ValueError, match="rtc_max_delay"):
        pi0_config.Pi0Config(action_horizon=10, rtc_max_delay=10)


def test_param_counts_of_the_real_models():
    """Full-size trees are built abstractly: 3.238B (pi0) and 3.353B (pi0.5) parameters as upstream."""
    for pi05, expected in ((False, 3.238e9), (True, 3.353e9)):
        model = nnx.eval_shape(lambda p=pi05: pi0_config.Pi0Config(pi05=p).create(jax.random.key(0)))
        n = sum(x.size for x in jax.tree.leaves(nnx.state(model)))
        assert abs(n - expected) / expected < 1e-3, n


def test_freeze_filters_match_upstream_counts():
    base = pi0_config.Pi0Config()
    assert _count(dataclasses.replace(base, paligemma_variant="gemma_2b_lora"), base.get_freeze_filter()) == 0
    assert _count(base, dataclasses.replace(base, paligemma_variant="gemma_2b_lora").get_freeze_filter()) == 9
    assert _count(base, dataclasses.replace(base, action_expert_variant="gemma_300m_lora").get_freeze_filter()) == 8
    both = dataclasses.replace(base, paligemma_variant="gemma_2b_lora", action_expert_variant="gemma_300m_lora")
    assert _count(base, both.get_freeze_filter()) == 17
    assert _count(both, both.get_freeze_filter()) == 17  # LoRA weights themselves stay trainable


def test_lora_einsum_equals_merged_weight():
    k = iter(jax.random.split(jax.random.key(1), 8))
    x = jax.random.normal(next(k), (2, 5, 16))
    w = jax.random.normal(next(k), (4, 16, 8))
    a = jax.random.normal(next(k), (4, 16, 3))
    b = jax.random.normal(next(k), (4, 3, 8))
    cfg = lora.LoRAConfig(rank=3, alpha=6.0)
    got = lora.lora_einsum("BTD,NDH->BTNH", x, w, a, b, cfg.scaling)
    merged = w + cfg.scaling * jnp.einsum("NDr,NrH->NDH", a, b)
    np.testing.assert_allclose(got, jnp.einsum("BTD,NDH->BTNH", x, merged), rtol=1e-5, atol=1e-5)
    wo = jax.random.normal(next(k), (4, 8, 16))
    ao, bo = jax.random.normal(next(k), (4, 8, 3)), jax.random.normal(next(k), (4, 3, 16))
    xo = jax.random.normal(next(k), (2, 5, 4, 8))
    got = lora.lora_einsum("BTNH,NHD->BTD", xo, wo, ao, bo, 1.0)
    np.testing.assert_allclose(
        got, jnp.einsum("BTNH,NHD->BTD", xo, wo + jnp.einsum("NHr,NrD->NHD", ao, bo)), rtol=1e-4, atol=1e-4
    )


def _tiny(**kw):
    base = dict(
        dtype="float32",
        paligemma_variant="dummy",
        action_expert_variant="dummy",
        action_horizon=6,
        vision_variant="tiny",
        paligemma_vocab_size=1024,
        max_token_len=16,
    )
    return pi0_config.Pi0Config(**{**base, **kw})


@pytest.mark.slow
def test_lora_variant_runs_and_adds_params():
    assert gemma.get_config("gemma_2b_lora").lora_configs["attn"].rank == 16
    cfg = _tiny(pi05=True, paligemma_variant="dummy_lora", action_expert_variant="dummy_lora")
    model = cfg.create(jax.random.key(0))
    state = nnx.state(model).to_pure_dict()
    assert state["PaliGemma"]["llm"]["layers"]["attn"]["q_einsum"]["lora_a"].shape == (4, 8, 64, 4)
    assert state["PaliGemma"]["llm"]["layers"]["mlp_1"]["linear_lora_b"].shape == (4, 4, 64)
    assert _count(cfg, cfg.get_freeze_filter()) == 20  # 17 as pi0, +3: adaRMS norms have kernel+bias, not scale
    obs, act = cfg.fake_obs(2), cfg.fake_act(2)
    out = model.sample_actions(jax.random.key(1), obs, num_steps=2)
    assert out.shape == (2, 6, 32) and bool(jnp.isfinite(out).all())
    assert model.compute_loss(jax.random.key(0), obs, act, train=True).shape == (2, 6)


def test_training_time_rtc_loss_masks_the_given_prefix():
    cfg = _tiny(pi05=True, rtc_max_delay=4)
    model = cfg.create(jax.random.key(0))
    obs, act = cfg.fake_obs(48), cfg.fake_act(48)
    loss = np.asarray(model.compute_loss(jax.random.key(3), obs, act))
    zero_prefix = (loss == 0).argmin(axis=1)  # d = number of leading zero-loss steps
    assert set(zero_prefix.tolist()) <= {0, 1, 2, 3} and len(set(zero_prefix.tolist())) >= 3
    counts = np.bincount(zero_prefix, minlength=4)
    assert counts[0] > counts[3]  # p(d) ∝ exp(D-1-d): short delays are the most likely
    # The postfix is re-weighted by H/(H-d): the mean over H equals the mean over the postfix of the raw loss.
    assert (loss[zero_prefix == 0] > 0).all()


@pytest.mark.slow
def test_a_few_sgd_steps_reduce_the_loss():
    import optax

    cfg = _tiny(pi05=True)
    model = cfg.create(jax.random.key(0))
    obs, act = cfg.fake_obs(4), jax.random.normal(jax.random.key(5), (4, 6, 32)) * 0.5
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, rng):
        def loss_fn(m):
            return jnp.mean(m.compute_loss(rng, obs, act))

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt, jax.random.key(0))) for _ in range(8)]
    assert losses[-1] < 0.7 * losses[0], losses
