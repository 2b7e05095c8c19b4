"""Helpers shared by the robot input/output transforms."""

from __future__ import annotations

import dataclasses

import numpy as np


def to_hwc_uint8(img) -> np.ndarray:
    img = np.asarray(img)
    if np.issubdtype(img.dtype, np.floating):
        img = (255 * img).astype(np.uint8)
    if img.ndim == 3 and img.shape[0] == 3 and img.shape[-1] != 3:
        img = np.transpose(img, (1, 2, 0))
    return img


@dataclasses.dataclass(frozen=True)
class SingleArmInputs:
    """Single arm with a base (third-person) and a wrist camera; the client sends
    {"observation/state": [D], "observation/images/base": HWC uint8, "observation/images/wrist": HWC uint8, "prompt"}.
    The right-wrist slot is zeros with mask False (pi0 / pi0.5 always take three cameras)."""

    state_dim: int
    robot: str = "robot"

    def __call__(self, data: dict) -> dict:
        required = ("observation/state", "observation/images/base", "observation/images/wrist")
        missing = [k for k in required if k not in data]
        if missing:
            raise KeyError(
                f"{self.robot} observation is missing {missing}; the client must send {list(required)} (+ 'prompt')"
            )
        state = np.asarray(data["observation/state"], dtype=np.float32)
        if state.shape[-1] != self.state_dim:
            raise ValueError(
                f"observation/state has {state.shape[-1]} dims, the {self.robot} config expects "
                f"{self.state_dim}; check the robot mode / config"
            )
        base = to_hwc_uint8(data["observation/images/base"])
        wrist = to_hwc_uint8(data["observation/images/wrist"])
        inputs = {
            "state": state,
            "image": {"base_0_rgb": base, "left_wrist_0_rgb": wrist, "right_wrist_0_rgb": np.zeros_like(base)},
            "image_mask": {"base_0_rgb": np.True_, "left_wrist_0_rgb": np.True_, "right_wrist_0_rgb": np.False_},
        }
        if "actions" in data:
            inputs["actions"] = np.asarray(data["actions"], dtype=np.float32)
        if "prompt" in data:
            inputs["prompt"] = data["prompt"]
        return inputs


@dataclasses.dataclass(frozen=True)
class SliceOutputs:
    """Keep the robot's action dims of the model's padded actions."""

    action_dim: int

    def __call__(self, data: dict) -> dict:
        return {"actions": np.asarray(data["actions"][..., : self.action_dim])}
