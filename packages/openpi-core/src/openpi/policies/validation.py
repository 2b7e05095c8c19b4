"""Checks a request's observation before the model runs, so a bad one gets an error that names the field, what was
expected and what arrived (instead of a numpy broadcast message or a JAX traceback, or a NaN state being answered).

The checks follow the policy's robot input transform (the first transform after the default-prompt injection):
- state (`observation/state` for Piper / Flexiv, `state` for ALOHA): a 1-D numeric vector of the transform's
  state_dim values, all finite;
- images: each camera the transform needs (and, for ALOHA, only known cameras): an array with 3 axes, one of them
  (first or last) the 3 colour channels, uint8 or float in [0, 1] (finite), every side between 1 and 2048;
- ALOHA's privileged `env_state` when the transform appends it: like the state.
Whatever the transform:
- `prev_actions` (real-time chunking): [k, action_dim] with k <= the action horizon (metadata), finite;
- `inference_delay`: an integer in [0, k];
- `prompt`: a string of at most `max_prompt_chars` characters.
Other fields pass through untouched (upstream clients may send extras).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
from typing import Any

import numpy as np

from openpi import transforms as _transforms
from openpi.policies.aloha_policy import AlohaInputs
from openpi.policies.common import SingleArmInputs

MAX_IMAGE_SIDE = 2048
MAX_PROMPT_CHARS = 2000


class ObservationError(ValueError):
    """An observation the policy refuses; the text names the field, the expectation and what arrived."""


@dataclasses.dataclass(frozen=True)
class ObservationSpec:
    robot: str = "robot"
    state_key: str | None = None
    state_dim: int | None = None
    image_keys: tuple[str, ...] = ()
    """Required top-level image fields (single-arm layout)."""
    camera_dict: str | None = None
    """ALOHA layout: the field holding a dict of cameras."""
    cameras_required: tuple[str, ...] = ()
    cameras_allowed: tuple[str, ...] = ()
    vectors: tuple[tuple[str, int], ...] = ()
    """Further required 1-D finite vectors (field, length), e.g. ALOHA's privileged env_state."""
    action_dim: int | None = None
    action_horizon: int | None = None
    max_prompt_chars: int = MAX_PROMPT_CHARS
    max_image_side: int = MAX_IMAGE_SIDE


def _skip_prompt_injection(transforms: Sequence[Any]):
    for t in transforms:
        if isinstance(t, _transforms.InjectDefaultPrompt):
            continue
        return t
    return None


def spec_for(transforms: Sequence[Any], metadata: Mapping[str, Any] | None = None) -> ObservationSpec:
    """The checks for a policy with these input transforms (in order) and this metadata."""
    metadata = metadata or {}
    common = {
        "action_dim": _int_or_none(metadata.get("action_dim")),
        "action_horizon": _int_or_none(metadata.get("action_horizon")),
    }
    robot = _skip_prompt_injection(transforms)
    if isinstance(robot, SingleArmInputs):
        return ObservationSpec(
            robot=robot.robot,
            state_key="observation/state",
            state_dim=robot.state_dim,
            image_keys=("observation/images/base", "observation/images/wrist"),
            **common,
        )
    if isinstance(robot, AlohaInputs):
        env_state_dim = int(getattr(robot, "env_state_dim", 0) or 0)
        return ObservationSpec(
            robot="ALOHA",
            state_key="state",
            state_dim=14,
            camera_dict="images",
            cameras_required=("cam_high",),
            cameras_allowed=tuple(robot.EXPECTED_CAMERAS),
            vectors=(("env_state", env_state_dim),) if env_state_dim else (),
            **common,
        )
    # A custom repack or no robot transform: only the robot-independent checks.
    return ObservationSpec(**common)


def _int_or_none(value) -> int | None:
    return value if type(value) is int else None


def _what(value) -> str:
    """What arrived, in a few words."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {list(value.shape)} dtype {value.dtype}"
    if isinstance(value, np.generic):
        return f"a numpy {value.dtype} scalar"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return f"a map with keys {sorted(map(str, value))[:8]}"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return f"a {type(value).__name__}"


def _numeric(field: str, value, expected: str) -> np.ndarray:
    if isinstance(value, (dict, str, bytes)) or value is None:
        raise ObservationError(f"{field}: expected {expected}, got {_what(value)}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):  # ragged nested lists
        raise ObservationError(f"{field}: expected {expected}, got {_what(value)} (ragged or not numeric)") from None
    if arr.dtype.kind not in "iuf":
        raise ObservationError(f"{field}: expected {expected}, got {_what(value)} (not numbers)")
    return arr


def _finite(field: str, arr: np.ndarray, expected: str) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.isfinite(arr).sum())
        raise ObservationError(f"{field}: expected {expected}, got {bad} non-finite value(s) (NaN or inf)")


def _vector(field: str, value, dim: int | None, what: str) -> None:
    expected = f"{dim} finite numbers ({what})" if dim else "a vector of finite numbers"
    arr = _numeric(field, value, expected)
    if arr.ndim != 1 or (dim is not None and arr.shape[0] != dim):
        raise ObservationError(f"{field}: expected {expected}, got {_what(arr)}")
    _finite(field, arr, expected)


def _image(field: str, value, max_side: int) -> None:
    expected = f"an image array HxWx3 or 3xHxW, uint8 or float in [0, 1], sides 1..{max_side}"
    if not isinstance(value, np.ndarray):
        raise ObservationError(f"{field}: expected {expected}, got {_what(value)}")
    shape = value.shape
    if value.ndim != 3 or 3 not in (shape[0], shape[-1]):
        raise ObservationError(f"{field}: expected {expected}, got {_what(value)}")
    if value.dtype != np.uint8 and value.dtype.kind != "f":
        raise ObservationError(f"{field}: expected {expected}, got {_what(value)}")
    if min(shape) < 1 or max(shape) > max_side:
        raise ObservationError(f"{field}: expected {expected}, got {_what(value)}")
    if value.dtype.kind == "f":
        if not np.isfinite(value).all():
            raise ObservationError(f"{field}: expected {expected}, got NaN or inf pixels")
        lo, hi = float(value.min()), float(value.max())
        if lo < 0 or hi > 1:
            raise ObservationError(
                f"{field}: expected {expected}, got float pixels in [{lo:g}, {hi:g}] (send uint8, or float / 255)"
            )


def _require(obs: Mapping, field: str, spec: ObservationSpec):
    if field not in obs:
        raise ObservationError(
            f"{field}: missing; the {spec.robot} policy needs {_needed(spec)} (got fields {sorted(map(str, obs))[:12]})"
        )
    return obs[field]


def _needed(spec: ObservationSpec) -> str:
    fields = [spec.state_key, *spec.image_keys]
    if spec.camera_dict:
        fields.append(f"{spec.camera_dict}: {{{', '.join(spec.cameras_required)}, ...}}")
    fields += [name for name, _ in spec.vectors]
    return ", ".join(repr(f) if "{" not in f else f for f in fields if f) + " (+ 'prompt')"


def _rtc(obs: Mapping, spec: ObservationSpec) -> None:
    prev = obs.get("prev_actions")
    k = 0
    if prev is not None:
        dim = spec.action_dim
        horizon = spec.action_horizon
        expected = (
            f"[k, {dim if dim is not None else 'action_dim'}] finite actions with k <= "
            f"{horizon if horizon is not None else 'the action horizon'}"
        )
        arr = _numeric("prev_actions", prev, expected)
        if (
            arr.ndim != 2
            or (dim is not None and arr.shape[1] != dim)
            or (horizon is not None and arr.shape[0] > horizon)
        ):
            raise ObservationError(f"prev_actions: expected {expected}, got {_what(arr)}")
        _finite("prev_actions", arr, expected)
        k = arr.shape[0]
    if "inference_delay" in obs:
        delay = obs["inference_delay"]
        if isinstance(delay, np.integer):
            delay = int(delay)
        if type(delay) is not int or not 0 <= delay <= k:
            raise ObservationError(
                f"inference_delay: expected an integer in [0, {k}] (0..len(prev_actions)), got {delay!r:.60}"
            )


def check_observation(obs, spec: ObservationSpec) -> None:
    """Raise `ObservationError` for the first field that does not match the spec (see the module doc)."""
    if not isinstance(obs, Mapping):
        raise ObservationError(f"observation: expected a map of fields, got {_what(obs)}")
    if spec.state_key is not None:
        _vector(spec.state_key, _require(obs, spec.state_key, spec), spec.state_dim, f"the {spec.robot} state")
    for key in spec.image_keys:
        _image(key, _require(obs, key, spec), spec.max_image_side)
    if spec.camera_dict is not None:
        cameras = _require(obs, spec.camera_dict, spec)
        if not isinstance(cameras, Mapping):
            raise ObservationError(f"{spec.camera_dict}: expected a map of camera name -> image, got {_what(cameras)}")
        unknown = [str(c) for c in cameras if c not in spec.cameras_allowed]
        if unknown:
            raise ObservationError(
                f"{spec.camera_dict}: unknown camera(s) {unknown[:8]}; expected a subset of {list(spec.cameras_allowed)}"
            )
        for cam in spec.cameras_required:
            if cam not in cameras:
                raise ObservationError(
                    f"{spec.camera_dict}/{cam}: missing; the {spec.robot} policy needs it (got {sorted(cameras)})"
                )
        for cam, img in cameras.items():
            _image(f"{spec.camera_dict}/{cam}", img, spec.max_image_side)
    for name, dim in spec.vectors:
        _vector(name, _require(obs, name, spec), dim, f"the {spec.robot} policy's {name}")
    if "prompt" in obs:
        prompt = obs["prompt"]
        if not isinstance(prompt, str):
            raise ObservationError(f"prompt: expected a string, got {_what(prompt)}")
        if len(prompt) > spec.max_prompt_chars:
            raise ObservationError(f"prompt: expected at most {spec.max_prompt_chars} characters, got {len(prompt)}")
    _rtc(obs, spec)
