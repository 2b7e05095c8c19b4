"""Gradient checkpointing of PI0Pytorch (the PyTorch trainer's default): same loss and gradients as without it,
and it really stores fewer activations for the backward pass."""

from __future__ import annotations

import jax
import jax_init
import numpy as np
import torch

from openpi.models import pi0_config


def _saved_bytes_and_grads(model, obs, actions, noise, time):
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model.compute_loss(obs, actions, noise=noise, time=time).mean()
    model.zero_grad()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), sum(saved), grads


def test_checkpointing_keeps_gradients_and_saves_activation_memory():
    cfg = pi0_config.Pi0Config(pi05=True, action_horizon=4, **{**pi0_config.TINY, "max_token_len": 16})
    model = jax_init.torch_model_from_jax_init(cfg, seed=0).train()
    obs = jax.tree.map(lambda x: torch.as_tensor(np.asarray(x)), cfg.fake_obs(2))
    rng = np.random.default_rng(0)
    actions = torch.as_tensor(rng.normal(size=(2, 4, 32)).astype(np.float32))
    noise = torch.as_tensor(rng.normal(size=(2, 4, 32)).astype(np.float32))
    time = torch.tensor([0.3, 0.8])

    loss_plain, saved_plain, g_plain = _saved_bytes_and_grads(model, obs, actions, noise, time)
    model.gradient_checkpointing_enable()
    loss_ckpt, saved_ckpt, g_ckpt = _saved_bytes_and_grads(model, obs, actions, noise, time)

    assert loss_ckpt == loss_plain
    assert g_ckpt.keys() == g_plain.keys() and len(g_plain) > 10
    for name in g_plain:
        torch.testing.assert_close(g_ckpt[name], g_plain[name], rtol=1e-5, atol=1e-6, msg=name)
    # The Gemma layers' activations are recomputed instead of stored.
    print(f"saved for backward: {saved_plain / 1e6:.1f} MB plain, {saved_ckpt / 1e6:.1f} MB with checkpointing")
    assert saved_ckpt < 0.6 * saved_plain, (saved_ckpt, saved_plain)
    # Inference (no autograd) never recomputes.
    with torch.no_grad():
        model.eval()
        assert torch.isfinite(model.compute_loss(obs, actions, noise=noise, time=time)).all()
