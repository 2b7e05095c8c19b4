"""RTC weights shared by the JAX and the PyTorch samplers (numpy only; re-exported by openpi.models.rtc)."""

from __future__ import annotations

import math

import numpy as np


def prefix_weights(delay: int, end: int, total: int, schedule: str = "exp") -> np.ndarray:
    """Soft mask over the horizon: 1 for i < delay, ramp to 0 at `end`, 0 for i >= end."""
    start = min(delay, end)
    i = np.arange(total, dtype=np.float64)
    w = np.clip((start - 1 - i) / (end - start + 1) + 1, 0.0, 1.0)
    if schedule == "exp":
        w = w * np.expm1(w) / (math.e - 1)
    elif schedule == "ones":
        w = np.ones(total)
    elif schedule == "zeros":
        w = (i < start).astype(np.float64)
    elif schedule != "linear":
        raise ValueError(f"schedule {schedule!r}: use exp, linear, ones or zeros")
    return np.where(i >= end, 0.0, w).astype(np.float32)


def guidance_weight(t: float, max_guidance_weight: float) -> float:
    """min(beta, (t/(1-t)) * (t^2 + (1-t)^2) / t^2) = min(beta, 1/(t(1-t)) - 2); beta at t = 1 (and t = 0)."""
    if t <= 0.0 or t >= 1.0:
        return max_guidance_weight
    return min(max_guidance_weight, 1.0 / (t * (1.0 - t)) - 2.0)
