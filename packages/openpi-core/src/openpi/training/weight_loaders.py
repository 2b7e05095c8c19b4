"""Initial-weight loaders used by training configs (``TrainConfig.weight_loader``).

A loader receives the model's parameter tree as a nested dict whose leaves are ``jax.ShapeDtypeStruct`` (or
arrays) and returns a tree of the same structure in which loaded leaves are numpy arrays (cast to the model's
dtype) and the leaves it did not load are left as they were (the trainer then keeps their init values).
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import logging
import pathlib
import re
from typing import Any
from typing import Protocol
from typing import runtime_checkable

import numpy as np

from openpi.models import model as _model
from openpi.training import utils

logger = logging.getLogger("openpi.training")

PALIGEMMA_PT_224_URL = "gs://vertex-model-garden-paligemma-us/paligemma/pt_224.npz"


@runtime_checkable
class WeightLoader(Protocol):
    def load(self, params: dict) -> dict:
        """Return ``params`` with (some) leaves replaced by loaded numpy arrays."""


@dataclasses.dataclass(frozen=True)
class NoOpWeightLoader:
    """Train from the model's random init."""

    def load(self, params: dict) -> dict:
        return params


@dataclasses.dataclass(frozen=True)
class CheckpointWeightLoader:
    """Load an openpi ``params`` dir (local, ``gs://openpi-assets/...`` or any URL ``maybe_download`` handles).

    Keys present in the checkpoint but not in the model are dropped (logged). Keys of the model missing from
    the checkpoint keep their init values when they match ``missing_regex`` (default: LoRA adapters, so a
    full checkpoint can start a LoRA fine-tune); any other missing key raises ``KeyError`` naming it. A shape
    mismatch raises ``ValueError`` naming the key and both shapes.
    """

    params_path: str
    missing_regex: str = ".*lora.*"

    def load(self, params: dict) -> dict:
        path = _resolve(self.params_path)
        loaded = restore_numpy_params(path)
        return merge_params(loaded, params, missing_regex=self.missing_regex, source=str(self.params_path))


@dataclasses.dataclass(frozen=True)
class PaliGemmaWeightLoader:
    """Load the official PaliGemma ``pt_224.npz`` under ``PaliGemma/``; everything else keeps its init."""

    url: str = PALIGEMMA_PT_224_URL

    def load(self, params: dict) -> dict:
        path = _resolve(self.url)
        with np.load(path, allow_pickle=False) as f:
            flat = {k: f[k] for k in f.files}
        tree = utils.unflatten_dict(flat)
        loaded = {"PaliGemma": tree.get("params", tree)}
        return merge_params(loaded, params, missing_regex=".*", source=str(self.url))


def restore_numpy_params(params_path: pathlib.Path | str) -> dict:
    """Restore an orbax ``params`` dir as a nested dict of numpy arrays (``value`` leaves stripped)."""
    return _model.restore_params(params_path, restore_type=np.ndarray)


def merge_params(loaded: Mapping, params: Mapping, *, missing_regex: str, source: str = "checkpoint") -> dict:
    """Intersect ``loaded`` with the model tree ``params`` (see :class:`CheckpointWeightLoader`)."""
    flat_loaded = utils.flatten_dict(loaded)
    flat_model = utils.flatten_dict(params)
    pattern = re.compile(missing_regex)
    extra = sorted(set(flat_loaded) - set(flat_model))
    if extra:
        logger.info("Ignoring %d checkpoint keys the model does not have, e.g. %s", len(extra), extra[:3])
    missing = sorted(k for k in flat_model if k not in flat_loaded)
    bad_missing = [k for k in missing if not pattern.fullmatch(k)]
    if bad_missing:
        raise KeyError(
            f"{len(bad_missing)} model parameter(s) not found in {source}: {bad_missing[:5]}"
            f"{' ...' if len(bad_missing) > 5 else ''}. Check that the checkpoint matches the model config "
            f"(variants, pi05 flag, action_dim), or use NoOpWeightLoader to train from scratch."
        )
    if missing:
        logger.info("%d parameters keep their init values (not in %s), e.g. %s", len(missing), source, missing[:3])
    out = {}
    for key, ref in flat_model.items():
        if key not in flat_loaded:
            out[key] = ref
            continue
        value = np.asarray(flat_loaded[key])
        if tuple(value.shape) != tuple(ref.shape):
            raise ValueError(
                f"Shape mismatch for parameter {key!r}: {source} has {tuple(value.shape)}, the model expects "
                f"{tuple(ref.shape)}. The checkpoint was trained with a different model config."
            )
        out[key] = value.astype(ref.dtype) if hasattr(ref, "dtype") and value.dtype != ref.dtype else value
    return utils.unflatten_dict(out)


def loaded_leaves_only(tree: Mapping) -> dict:
    """Keep only leaves that are real arrays (drop ``ShapeDtypeStruct`` placeholders) — for partial replace."""
    flat = utils.flatten_dict(tree)
    return utils.unflatten_dict(
        {k: v for k, v in flat.items() if isinstance(v, (np.ndarray, np.generic)) or _is_array(v)}
    )


def _is_array(v: Any) -> bool:
    # jax imported here, not at the top: training/config.py imports this module on the PyTorch path, which must
    # not import jax (issue 22; tests/models_torch/test_models_torch_no_jax.py).
    import jax

    return isinstance(v, jax.Array)


def _resolve(url: str) -> pathlib.Path:
    """Local paths pass through; remote ones go through ``openpi.shared.download.maybe_download``."""
    if "://" not in str(url) or str(url).startswith("file://"):
        p = pathlib.Path(str(url).removeprefix("file://")).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"Weight path {p} does not exist (weight_loader params_path)")
        return p
    from openpi.shared import download

    return pathlib.Path(download.maybe_download(str(url)))
