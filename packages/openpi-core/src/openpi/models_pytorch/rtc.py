"""RTC samplers for PI0Pytorch (same math as openpi.models.rtc; autograd provides the VJP)."""

from __future__ import annotations

import torch

from openpi.models.rtc_common import guidance_weight
from openpi.models.rtc_common import prefix_weights


def sample_actions_rtc(
    model,
    device,
    observation,
    *,
    prev_chunk,
    inference_delay: int,
    method: str = "vjp",
    max_guidance_weight: float = 5.0,
    num_steps: int = 10,
    noise=None,
):
    if method not in ("vjp", "identity", "prefix"):
        raise ValueError(f"method {method!r}: use vjp, identity or prefix")
    b, h, a = observation.state.shape[0], model.action_horizon, model.action_dim
    prev = torch.as_tensor(prev_chunk, dtype=torch.float32, device=device)
    if prev.ndim != 3 or prev.shape[0] not in (1, b) or prev.shape[2] != a:
        raise ValueError(
            f"prev_chunk must be [batch {b} (or 1), k, action_dim {a}] in model space, got {tuple(prev.shape)}"
        )
    k = prev.shape[1]
    if k > h:
        raise ValueError(f"prev_chunk has {k} actions, more than the action horizon {h}")
    y = torch.nn.functional.pad(prev, (0, 0, 0, h - k))
    d = max(0, min(int(inference_delay), k))
    w_mask = torch.as_tensor(prefix_weights(d, k, h), device=device)[None, :, None]
    x = torch.randn(b, h, a, device=device) if noise is None else torch.as_tensor(noise, dtype=torch.float32).to(device)
    with torch.no_grad():
        prefix = model.prepare_prefix(observation)
    committed = (torch.arange(h, device=device) < d)[None, :]
    # The vjp needs a backward pass through the step: PI0Pytorch's eager step (a compiled one has no backward graph).
    vjp_step = getattr(model, "velocity_eager", model.velocity)
    dt = -1.0 / num_steps
    for step in range(num_steps):
        t = 1.0 + step * dt
        t_vec = torch.full((b,), t, device=device)
        if method == "prefix":
            x = torch.where(committed[..., None], y, x)
            with torch.no_grad():
                v = model.velocity(prefix, observation, x, torch.where(committed, 0.0, t_vec[:, None]))
        elif k == 0:
            with torch.no_grad():
                v = model.velocity(prefix, observation, x, t_vec)
        elif method == "vjp":
            x_req = x.detach().requires_grad_(True)
            with torch.enable_grad():
                v = vjp_step(prefix, observation, x_req, t_vec)
                x0_hat = x_req - t * v
                (g,) = torch.autograd.grad(x0_hat, x_req, grad_outputs=(y - x0_hat.detach()) * w_mask)
            v = v.detach() - guidance_weight(t, max_guidance_weight) * g
        else:  # identity
            with torch.no_grad():
                v = model.velocity(prefix, observation, x, t_vec)
                v = v - guidance_weight(t, max_guidance_weight) * (y - (x - t * v)) * w_mask
        x = (x + dt * v).detach()
    if method == "prefix":
        x = torch.where(committed[..., None], y, x)
    return x
