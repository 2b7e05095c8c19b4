"""Data transforms (upstream openpi names and semantics). Each transform maps one unbatched sample dict to another."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import re
from typing import Any
from typing import Protocol

import numpy as np

from openpi.shared import normalize as _normalize

DataDict = dict[str, Any]


class DataTransformFn(Protocol):
    def __call__(self, data: DataDict) -> DataDict: ...


@dataclasses.dataclass(frozen=True)
class Group:
    inputs: Sequence[DataTransformFn] = ()
    outputs: Sequence[DataTransformFn] = ()

    def push(self, *, inputs: Sequence[DataTransformFn] = (), outputs: Sequence[DataTransformFn] = ()) -> Group:
        """Append input transforms at the end and prepend output transforms (outputs run in reverse order)."""
        return Group(inputs=(*self.inputs, *inputs), outputs=(*outputs, *self.outputs))


@dataclasses.dataclass(frozen=True)
class CompositeTransform:
    transforms: Sequence[DataTransformFn]

    def __call__(self, data: DataDict) -> DataDict:
        for t in self.transforms:
            data = t(data)
        return data


def compose(transforms: Sequence[DataTransformFn]) -> DataTransformFn:
    return CompositeTransform(tuple(transforms))


# ---------------------------------------------------------------------------------------------------------- helpers


def flatten_dict(tree: Mapping, sep: str = "/") -> dict:
    out = {}

    def rec(t, prefix):
        for k, v in t.items():
            key = f"{prefix}{sep}{k}" if prefix else str(k)
            if isinstance(v, Mapping):
                rec(v, key)
            else:
                out[key] = v

    rec(tree, "")
    return out


def unflatten_dict(tree: Mapping, sep: str = "/") -> dict:
    out: dict = {}
    for key, value in tree.items():
        parts = key.split(sep)
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
            if not isinstance(cur, dict):
                raise ValueError(f"key {key!r} conflicts with a leaf at {p!r}")
        cur[parts[-1]] = value
    return out


def apply_tree(tree: Mapping, selector: Mapping, fn: Callable[[Any, Any], Any], *, strict: bool = False) -> dict:
    """Apply fn(value, selector_value) to the leaves of `tree` whose flattened key is in `selector`."""
    flat, sel = flatten_dict(tree), flatten_dict(selector)
    if strict:
        missing = set(sel) - set(flat)
        if missing:
            raise ValueError(f"keys {sorted(missing)} are missing from the data (have {sorted(flat)})")
    return unflatten_dict({k: fn(v, sel[k]) if k in sel else v for k, v in flat.items()})


def pad_to_dim(x: np.ndarray, target_dim: int, axis: int = -1, value: float = 0.0) -> np.ndarray:
    x = np.asarray(x)
    cur = x.shape[axis]
    if cur < target_dim:
        pad = [(0, 0)] * x.ndim
        pad[axis] = (0, target_dim - cur)
        return np.pad(x, pad, constant_values=value)
    return x


def make_bool_mask(*dims: int) -> tuple[bool, ...]:
    """make_bool_mask(6, -1, 6, -1) -> 6 True, 1 False, 6 True, 1 False."""
    out: list[bool] = []
    for d in dims:
        out.extend([True] * d if d > 0 else [False] * (-d))
    return tuple(out)


# ------------------------------------------------------------------------------------------------------- transforms


@dataclasses.dataclass(frozen=True)
class RepackTransform:
    """Build a new dict: `structure` maps new (nested) keys to '/'-joined paths of the input, e.g.
    {"images": {"cam_high": "observation.images.top"}, "state": "observation.state", "actions": "action"}."""

    structure: Mapping

    def __call__(self, data: DataDict) -> DataDict:
        flat = flatten_dict(data)
        missing = [v for v in flatten_dict(self.structure).values() if v not in flat]
        if missing:
            raise KeyError(
                f"sample is missing keys {missing} (available: {sorted(flat)}); fix the repack structure "
                "or the dataset features"
            )
        return _map_leaves(self.structure, lambda k: flat[k])


def _map_leaves(tree, fn):
    if isinstance(tree, Mapping):
        return {k: _map_leaves(v, fn) for k, v in tree.items()}
    return fn(tree)


@dataclasses.dataclass(frozen=True)
class InjectDefaultPrompt:
    prompt: str | None

    def __call__(self, data: DataDict) -> DataDict:
        if self.prompt is not None and "prompt" not in data:
            data["prompt"] = np.asarray(self.prompt)
        return data


@dataclasses.dataclass(frozen=True)
class Normalize:
    norm_stats: Mapping[str, _normalize.NormStats] | None
    use_quantiles: bool = False
    strict: bool = False

    def __post_init__(self):
        if self.norm_stats is not None and self.use_quantiles:
            missing = [k for k, s in self.norm_stats.items() if s.q01 is None or s.q99 is None]
            if missing:
                raise ValueError(f"quantile normalization needs q01/q99 for {missing}; recompute the norm stats")

    def __call__(self, data: DataDict) -> DataDict:
        if self.norm_stats is None:
            return data
        fn = self._quantile if self.use_quantiles else self._zscore
        return apply_tree(data, self.norm_stats, fn, strict=self.strict)

    @staticmethod
    def _zscore(x, stats: _normalize.NormStats):
        d = x.shape[-1]
        return (x - stats.mean[..., :d]) / (stats.std[..., :d] + 1e-6)

    @staticmethod
    def _quantile(x, stats: _normalize.NormStats):
        d = x.shape[-1]
        q01, q99 = stats.q01[..., :d], stats.q99[..., :d]
        return (x - q01) / (q99 - q01 + 1e-6) * 2.0 - 1.0


@dataclasses.dataclass(frozen=True)
class Unnormalize:
    norm_stats: Mapping[str, _normalize.NormStats] | None
    use_quantiles: bool = False

    def __call__(self, data: DataDict) -> DataDict:
        if self.norm_stats is None:
            return data
        fn = self._quantile if self.use_quantiles else self._zscore
        return apply_tree(data, self.norm_stats, fn, strict=True)

    @staticmethod
    def _zscore(x, stats: _normalize.NormStats):
        d = x.shape[-1]
        mean = pad_to_dim(stats.mean, d, value=0.0)[..., :d]
        std = pad_to_dim(stats.std, d, value=1.0)[..., :d]
        return x * (std + 1e-6) + mean

    @staticmethod
    def _quantile(x, stats: _normalize.NormStats):
        dim = min(stats.q01.shape[-1], x.shape[-1])
        q01, q99 = stats.q01[..., :dim], stats.q99[..., :dim]
        head = (x[..., :dim] + 1.0) / 2.0 * (q99 - q01 + 1e-6) + q01
        if dim == x.shape[-1]:
            return head
        return np.concatenate([head, x[..., dim:]], axis=-1)


@dataclasses.dataclass(frozen=True)
class SelectImages:
    """Keep only the camera slots the model embeds (`Pi0Config.image_keys`); a missing one is an error."""

    keys: tuple[str, ...]

    def __call__(self, data: DataDict) -> DataDict:
        images, masks = data["image"], data.get("image_mask", {})
        missing = [k for k in self.keys if k not in images]
        if missing:
            raise ValueError(
                f"the model embeds camera slots {list(self.keys)} but the input transform produced "
                f"{sorted(images)} (missing {missing}); check the config's image_keys and the robot's cameras"
            )
        data["image"] = {k: images[k] for k in self.keys}
        if masks:
            data["image_mask"] = {k: masks[k] for k in self.keys if k in masks}
        return data


@dataclasses.dataclass(frozen=True)
class CropImages:
    """Crop camera slots to a region given as fractions of the image (top, left, bottom, right), before the resize
    to the model resolution: e.g. the table of a fixed overhead camera, so a small object covers more pixels. The
    same transform runs in training and serving (it is part of the policy's input transforms)."""

    box: tuple[float, float, float, float]
    keys: tuple[str, ...] = ("base_0_rgb",)

    def __post_init__(self):
        top, left, bottom, right = self.box
        if not (0.0 <= top < bottom <= 1.0 and 0.0 <= left < right <= 1.0):
            raise ValueError(
                f"crop box {self.box} must be fractions (top, left, bottom, right) with top < bottom, left < right"
            )

    def __call__(self, data: DataDict) -> DataDict:
        images = dict(data["image"])
        for key in self.keys:
            if key not in images:
                raise ValueError(f"crop: camera slot {key!r} is not in the input (got {sorted(images)})")
            img = np.asarray(images[key])
            h, w = img.shape[-3:-1]
            top, left, bottom, right = self.box
            rows = slice(int(round(top * h)), int(round(bottom * h)))
            cols = slice(int(round(left * w)), int(round(right * w)))
            images[key] = img[..., rows, cols, :]
        data["image"] = images
        return data


@dataclasses.dataclass(frozen=True)
class ResizeImages:
    height: int
    width: int

    def __call__(self, data: DataDict) -> DataDict:
        from openpi_client import image_tools

        data["image"] = {k: image_tools.resize_with_pad(v, self.height, self.width) for k, v in data["image"].items()}
        return data


@dataclasses.dataclass(frozen=True)
class SubsampleActions:
    stride: int

    def __call__(self, data: DataDict) -> DataDict:
        data["actions"] = data["actions"][:: self.stride]
        return data


def _shift_actions(data: DataDict, mask: Sequence[bool] | None, sign: int) -> DataDict:
    """actions[..., :len(mask)] += sign * state where mask, in place (no-op without actions or mask)."""
    if "actions" not in data or mask is None:
        return data
    state, actions = data["state"], data["actions"]
    mask = np.asarray(mask)
    dims = mask.shape[-1]
    actions[..., :dims] += sign * np.expand_dims(np.where(mask, state[..., :dims], 0), axis=-2)
    data["actions"] = actions
    return data


@dataclasses.dataclass(frozen=True)
class DeltaActions:
    """actions[..., :len(mask)] -= state where mask (absolute -> relative to the current state). In place."""

    mask: Sequence[bool] | None

    def __call__(self, data: DataDict) -> DataDict:
        return _shift_actions(data, self.mask, -1)


@dataclasses.dataclass(frozen=True)
class AbsoluteActions:
    """Inverse of DeltaActions. In place."""

    mask: Sequence[bool] | None

    def __call__(self, data: DataDict) -> DataDict:
        return _shift_actions(data, self.mask, +1)


@dataclasses.dataclass(frozen=True)
class TokenizePrompt:
    tokenizer: Any
    discrete_state_input: bool = False

    def __call__(self, data: DataDict) -> DataDict:
        if (prompt := data.pop("prompt", None)) is None:
            raise ValueError(
                "Prompt is required: send 'prompt' in the observation or set a default prompt "
                "(--default-prompt / the config's default_prompt)"
            )
        if not isinstance(prompt, str):
            prompt = prompt.item() if hasattr(prompt, "item") else str(prompt)
        if isinstance(prompt, bytes):
            prompt = prompt.decode()
        state = data.get("state") if self.discrete_state_input else None
        if self.discrete_state_input and state is None:
            raise ValueError("discrete_state_input needs 'state' in the sample")
        tokens, mask = self.tokenizer.tokenize(prompt, state)
        return {**data, "tokenized_prompt": tokens, "tokenized_prompt_mask": mask}


@dataclasses.dataclass(frozen=True)
class PromptFromLeRobotTask:
    """Set `prompt` from the LeRobot `task` string (or `task_index` via the dataset's task table)."""

    tasks: Mapping[int, str] | None = None

    def __call__(self, data: DataDict) -> DataDict:
        if "prompt" in data:
            return data
        if "task" in data:
            return {**data, "prompt": str(data["task"])}
        if "task_index" not in data:
            raise ValueError('Cannot extract prompt without "task" or "task_index"')
        idx = int(data["task_index"])
        if self.tasks is None or idx not in self.tasks:
            raise ValueError(f"task_index={idx} not found in the dataset's task table")
        return {**data, "prompt": self.tasks[idx]}


@dataclasses.dataclass(frozen=True)
class PadStatesAndActions:
    model_action_dim: int

    def __call__(self, data: DataDict) -> DataDict:
        data["state"] = pad_to_dim(data["state"], self.model_action_dim, axis=-1)
        if "actions" in data:
            data["actions"] = pad_to_dim(data["actions"], self.model_action_dim, axis=-1)
        return data


@dataclasses.dataclass(frozen=True)
class RemoveStrings:
    def __call__(self, data: DataDict) -> DataDict:
        return {k: v for k, v in data.items() if not np.issubdtype(np.asarray(v).dtype, np.str_)}


@dataclasses.dataclass(frozen=True)
class TransformDict:
    """Rename keys of the flattened dict by regex patterns {pattern: replacement or None (drop)}."""

    patterns: Mapping[str, str | None]

    def __call__(self, data: DataDict) -> DataDict:
        flat = flatten_dict(data)
        out = {}
        for k, v in flat.items():
            for pat, repl in self.patterns.items():
                if re.fullmatch(pat, k):
                    if repl is None:
                        break
                    k = re.sub(pat, repl, k)
                    out[k] = v
                    break
            else:
                out[k] = v
        return unflatten_dict(out)
