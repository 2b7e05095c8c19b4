"""Model-agnostic pieces shared by every model: observations, the config interface, preprocessing, param restore."""

from __future__ import annotations

import abc
import dataclasses
import enum
import logging
import pathlib
import sys
from typing import Any

import numpy as np

logger = logging.getLogger("openpi.models")

IMAGE_KEYS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")
IMAGE_RESOLUTION = (224, 224)


class ModelType(enum.Enum):
    PI0 = "pi0"
    PI05 = "pi05"


@dataclasses.dataclass(frozen=True)
class Observation:
    """A batch of model inputs. Images are float32 in [-1, 1], [B,H,W,3] (JAX) — torch holds the same fields.

    A plain dataclass (this module imports no jax); it becomes a JAX pytree through `register_jax_pytree()`, which
    runs as soon as jax and this module are both imported by any JAX code path (the JAX model, its config's
    `inputs_spec` / `fake_obs`, `preprocess_observation`, the JAX policy and data loader).
    """

    images: dict[str, Any]
    image_masks: dict[str, Any]
    state: Any
    tokenized_prompt: Any = None
    tokenized_prompt_mask: Any = None
    token_ar_mask: Any = None
    token_loss_mask: Any = None

    @classmethod
    def from_dict(cls, data: dict) -> Observation:
        """Build from upstream's dict layout (`image`, `image_mask`, `state`, `tokenized_prompt`, ...)."""
        if ("tokenized_prompt" in data) != ("tokenized_prompt_mask" in data):
            raise ValueError("tokenized_prompt and tokenized_prompt_mask must be provided together")
        if "image" not in data or "state" not in data:
            missing = [k for k in ("image", "state") if k not in data]
            raise KeyError(f"observation is missing {missing}; the model inputs need 'image' (dict) and 'state'")
        images = {}
        for key, img in data["image"].items():
            if img.dtype == np.uint8:
                img = img.astype(np.float32) / 255.0 * 2.0 - 1.0
            elif hasattr(img, "dtype") and str(img.dtype) == "torch.uint8":
                img = img.to(dtype=sys.modules["torch"].float32).permute(0, 3, 1, 2) / 255.0 * 2.0 - 1.0
            images[key] = img
        return cls(
            images=images,
            image_masks=dict(data.get("image_mask", {})),
            state=data["state"],
            tokenized_prompt=data.get("tokenized_prompt"),
            tokenized_prompt_mask=data.get("tokenized_prompt_mask"),
            token_ar_mask=data.get("token_ar_mask"),
            token_loss_mask=data.get("token_loss_mask"),
        )

    def replace(self, **changes) -> Observation:
        """`dataclasses.replace` (the method flax.struct dataclasses have)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        result = dataclasses.asdict(self)
        result["image"] = result.pop("images")
        result["image_mask"] = result.pop("image_masks")
        return result


class ShapeDtype:
    """Shape and numpy dtype of an input (what `inputs_spec` returns; a leaf for jax.tree and shared.tree maps)."""

    __slots__ = ("dtype", "shape")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    def __repr__(self) -> str:
        return f"ShapeDtype({self.shape}, {self.dtype})"


def register_jax_pytree() -> None:
    """Register `Observation` as a JAX pytree (idempotent; imports jax)."""
    import jax

    if getattr(Observation, "_jax_registered", False):
        return
    fields = [f.name for f in dataclasses.fields(Observation)]
    jax.tree_util.register_dataclass(Observation, data_fields=fields, meta_fields=[])
    Observation._jax_registered = True  # type: ignore[attr-defined]


if sys.modules.get("jax") is not None:  # jax already loaded by the caller: make Observation a pytree right away
    register_jax_pytree()


@dataclasses.dataclass(frozen=True)
class BaseModelConfig(abc.ABC):
    action_dim: int
    action_horizon: int
    max_token_len: int

    @property
    @abc.abstractmethod
    def model_type(self) -> ModelType: ...

    @abc.abstractmethod
    def create(self, rng): ...

    @abc.abstractmethod
    def inputs_spec(self, *, batch_size: int = 1) -> tuple[Observation, Any]: ...

    def load(self, params: dict, *, remove_extra_params: bool = True):
        """Create the model with `params` (a nested dict in the model's tree, e.g. from restore_params)."""
        from flax import nnx
        import jax
        import jax.numpy as jnp

        register_jax_pytree()
        model = nnx.eval_shape(lambda: self.create(jax.random.key(0)))
        graphdef, state = nnx.split(model)
        expected = state.to_pure_dict()
        if remove_extra_params:
            params = _intersect(params, expected)
        _check_tree(params, expected)
        params = jax.tree.map(jnp.asarray, params)
        state.replace_by_pure_dict(params)
        return nnx.merge(graphdef, state)

    def fake_obs(self, batch_size: int = 1) -> Observation:
        import jax
        import jax.numpy as jnp

        register_jax_pytree()
        obs_spec, _ = self.inputs_spec(batch_size=batch_size)
        return jax.tree.map(lambda x: jnp.ones(x.shape, x.dtype), obs_spec)

    def fake_act(self, batch_size: int = 1):
        import jax.numpy as jnp

        _, act_spec = self.inputs_spec(batch_size=batch_size)
        return jnp.ones(act_spec.shape, act_spec.dtype)

    def get_freeze_filter(self):
        from flax import nnx

        return nnx.Nothing


def _intersect(params: dict, expected: dict) -> dict:
    out = {}
    for k, v in expected.items():
        if k in params:
            out[k] = _intersect(params[k], v) if isinstance(v, dict) and isinstance(params[k], dict) else params[k]
    return out


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        path = f"{prefix}/{k}" if prefix else str(k)
        out.update(_flat(v, path) if isinstance(v, dict) else {path: v})
    return out


def _check_tree(params: dict, expected: dict) -> None:
    got, want = _flat(params), _flat(expected)
    missing = sorted(set(want) - set(got))
    if missing:
        raise ValueError(
            f"checkpoint is missing {len(missing)} params, e.g. {missing[:5]}; wrong config for this checkpoint?"
        )
    bad = [
        f"{k}: checkpoint {tuple(got[k].shape)} vs model {tuple(want[k].shape)}"
        for k in want
        if tuple(got[k].shape) != tuple(want[k].shape)
    ]
    if bad:
        raise ValueError(
            f"{len(bad)} param shapes differ, e.g. {bad[:3]}; does the config match the checkpoint (variant, action_dim)?"
        )


def preprocess_observation(
    rng,
    observation: Observation,
    *,
    train: bool = False,
    image_keys=IMAGE_KEYS,
    image_resolution=IMAGE_RESOLUTION,
) -> Observation:
    """Resize images to the model resolution, augment when training, and default missing masks to True."""
    import jax
    import jax.numpy as jnp

    from openpi.models import augment
    from openpi.shared import image_tools

    register_jax_pytree()

    missing = [k for k in image_keys if k not in observation.images]
    if missing:
        raise ValueError(
            f"images dict is missing keys {missing}; expected {list(image_keys)} (got {list(observation.images)})"
        )
    batch_shape = observation.state.shape[:-1]
    out_images = {}
    for i, key in enumerate(image_keys):
        image = observation.images[key]
        if tuple(image.shape[1:3]) != tuple(image_resolution):
            logger.info("Resizing image %s from %s to %s", key, image.shape[1:3], image_resolution)
            image = image_tools.resize_with_pad(image, *image_resolution)
        if train:
            image = augment.augment_image(jax.random.fold_in(rng, i), image, wrist="wrist" in key)
        out_images[key] = image
    out_masks = {}
    for key in out_images:
        mask = observation.image_masks.get(key)
        out_masks[key] = jnp.ones(batch_shape, dtype=jnp.bool_) if mask is None else jnp.asarray(mask)
    return dataclasses.replace(observation, images=out_images, image_masks=out_masks)


def restore_params(
    params_path: str | pathlib.Path,
    *,
    restore_type: type = np.ndarray,
    dtype=None,
    sharding=None,
) -> dict:
    """Read an orbax `params/` dir (openpi layout) into a nested dict, stripping openpi's trailing `value` keys."""
    import jax
    import orbax.checkpoint as ocp

    from openpi.shared import download

    params_path = pathlib.Path(download.maybe_download(str(params_path))).resolve()
    if not params_path.exists():
        raise FileNotFoundError(f"params dir {params_path} does not exist")
    if restore_type is jax.Array and sharding is None:
        mesh = jax.sharding.Mesh(jax.devices(), ("x",))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    with ocp.PyTreeCheckpointer() as ckptr:
        metadata = ckptr.metadata(params_path)
        item = metadata.item_metadata if hasattr(metadata, "item_metadata") else metadata
        tree = item.tree if hasattr(item, "tree") else item
        restore_args = jax.tree.map(
            lambda _: ocp.ArrayRestoreArgs(sharding=sharding, restore_type=restore_type, dtype=dtype), tree
        )
        params = ckptr.restore(params_path, ocp.args.PyTreeRestore(item=tree, restore_args=restore_args))
    if isinstance(params, dict) and set(params) == {"params"}:
        params = params["params"]
    flat = _flat(params)
    if flat and all(k.endswith("/value") for k in flat):
        flat = {k[: -len("/value")]: v for k, v in flat.items()}
    return _unflat(flat)


def _unflat(flat: dict) -> dict:
    out: dict = {}
    for path, v in flat.items():
        parts = path.split("/")
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = v
    return out
