"""ALOHA (Trossen, 14-d bimanual) inputs/outputs, including upstream's `adapt_to_pi` joint/gripper mapping."""

from __future__ import annotations

import dataclasses

import numpy as np

from openpi.policies.common import to_hwc_uint8


def _joint_flip_mask() -> np.ndarray:
    return np.array([1, -1, -1, 1, 1, 1, 1, 1, -1, -1, 1, 1, 1, 1])


def _normalize(x, min_val, max_val):
    return (x - min_val) / (max_val - min_val)


def _unnormalize(x, min_val, max_val):
    return x * (max_val - min_val) + min_val


def _gripper_to_angular(value):
    # ALOHA reports the gripper in a linear space (PUPPET_GRIPPER_POSITION_OPEN/CLOSED); pi0 was trained in an
    # angular space. Invert Interbotix' angular -> linear mapping (arm 0.036 m, horn 0.022 m), then normalize to the
    # (0.5476, 1.6296) rad range that pi0's (2405, 3110) encoder-count normalization corresponds to.
    value = _unnormalize(value, min_val=0.01844, max_val=0.05800)
    arm_length, horn_radius = 0.036, 0.022
    value = np.arcsin(np.clip((horn_radius**2 + value**2 - arm_length**2) / (2 * horn_radius * value), -1.0, 1.0))
    return _normalize(value, min_val=0.5476, max_val=1.6296)


def _gripper_from_angular(value):
    value = value + 0.5476
    return _normalize(value, min_val=-0.6213, max_val=1.4910)  # PUPPET_GRIPPER_JOINT_OPEN / CLOSE


def _gripper_from_angular_inv(value):
    value = _unnormalize(value, min_val=-0.6213, max_val=1.4910)
    return value - 0.5476


def _decode_state(state, adapt_to_pi: bool):
    if adapt_to_pi:
        state = _joint_flip_mask() * state
        state[..., [6, 13]] = _gripper_to_angular(state[..., [6, 13]])
    return state


def _encode_actions(actions, adapt_to_pi: bool):
    if adapt_to_pi:
        actions = _joint_flip_mask() * actions
        actions[..., [6, 13]] = _gripper_from_angular(actions[..., [6, 13]])
    return actions


def _encode_actions_inv(actions, adapt_to_pi: bool):
    if adapt_to_pi:
        actions = _joint_flip_mask() * actions
        actions[..., [6, 13]] = _gripper_from_angular_inv(actions[..., [6, 13]])
    return actions


@dataclasses.dataclass(frozen=True)
class AlohaInputs:
    """{"state" [14], "images": {"cam_high", "cam_left_wrist"?, "cam_right_wrist"?} (CHW or HWC)} -> model inputs."""

    adapt_to_pi: bool = True
    # Privileged simulator state: append data["env_state"] (the ALOHA-sim cube pose, xyz + wxyz quaternion) to the
    # joint state. Only for the pipeline-check tier of the sim recipe; a real robot has no such input.
    env_state_dim: int = 0
    # Training-only auxiliary target (pixel tier of the sim recipe): data["env_state"] [H, n], the cube pose over the
    # action chunk, is appended to the actions [H, 14] -> [H, 14 + n]. Observations without actions (serving) need
    # no env_state; AlohaOutputs returns the 14 joint dims only.
    env_state_target_dim: int = 0
    EXPECTED_CAMERAS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")

    def __call__(self, data: dict) -> dict:
        if "images" not in data or "state" not in data:
            raise KeyError(f"ALOHA observation needs 'state' and 'images' (got keys {sorted(data)})")
        in_images = data["images"]
        extra = set(in_images) - set(self.EXPECTED_CAMERAS)
        if extra:
            raise ValueError(f"unexpected ALOHA cameras {sorted(extra)}; expected a subset of {self.EXPECTED_CAMERAS}")
        if "cam_high" not in in_images:
            raise KeyError("ALOHA observation needs images['cam_high'] (the top camera)")
        state = _decode_state(np.asarray(data["state"], dtype=np.float32).copy(), self.adapt_to_pi)
        if self.env_state_dim:
            if "env_state" not in data:
                raise KeyError(
                    f"this policy was trained with the privileged simulator state: the observation needs 'env_state' "
                    f"[{self.env_state_dim}] (the sim client sends it with --privileged)"
                )
            env_state = np.asarray(data["env_state"], dtype=np.float32)
            if env_state.shape[-1:] != (self.env_state_dim,):
                raise ValueError(f"env_state must have {self.env_state_dim} values, got shape {env_state.shape}")
            state = np.concatenate([state, env_state], axis=-1)
        base = to_hwc_uint8(in_images["cam_high"])
        images, masks = {"base_0_rgb": base}, {"base_0_rgb": np.True_}
        for dest, src in (("left_wrist_0_rgb", "cam_left_wrist"), ("right_wrist_0_rgb", "cam_right_wrist")):
            if src in in_images:
                images[dest], masks[dest] = to_hwc_uint8(in_images[src]), np.True_
            else:
                images[dest], masks[dest] = np.zeros_like(base), np.False_
        inputs = {"image": images, "image_mask": masks, "state": state}
        if "actions" in data:
            actions = _encode_actions_inv(np.asarray(data["actions"], dtype=np.float32).copy(), self.adapt_to_pi)
            if self.env_state_target_dim:
                actions = np.concatenate([actions, self._env_state_target(data, actions.shape)], axis=-1)
            inputs["actions"] = actions
        if "prompt" in data:
            inputs["prompt"] = data["prompt"]
        return inputs

    def _env_state_target(self, data: dict, action_shape: tuple[int, ...]) -> np.ndarray:
        want = (*action_shape[:-1], self.env_state_target_dim)
        if "env_state" not in data:
            raise KeyError(
                f"env_state_target_dim={self.env_state_target_dim}: the training sample needs 'env_state' {want} "
                "(the dataset's observation.environment_state as an action-horizon sequence). Served, such a policy takes "
                "no RTC prev_actions (the cube dims of the previous chunk are unknown): use the sync, naive or "
                "ensemble executor"
            )
        target = np.asarray(data["env_state"], dtype=np.float32)
        if target.shape != want:
            raise ValueError(
                f"env_state must be the cube pose over the action chunk, shape {want}, got {target.shape}; list "
                "observation.environment_state in the data config's action_sequence_keys"
            )
        return target


@dataclasses.dataclass(frozen=True)
class AlohaOutputs:
    adapt_to_pi: bool = True

    def __call__(self, data: dict) -> dict:
        actions = np.asarray(data["actions"][:, :14]).copy()
        return {"actions": _encode_actions(actions, self.adapt_to_pi)}
