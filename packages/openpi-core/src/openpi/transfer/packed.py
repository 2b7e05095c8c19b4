"""A servable checkpoint packed small enough to ship in a git repository, and unpacked back into a step dir
(`scripts/transfer.py pack` / `unpack`, `make pack-checkpoint`).

A JAX step dir (``<step>/params`` orbax + ``<step>/assets``) is packed as::

    <packed>/
        params.bf16.npz     # every parameter rounded to bfloat16 (stored as its uint16 bit pattern), zip-compressed
        manifest.json       # config, source step, per-parameter dtype and shape, sha256 of params.bf16.npz
        assets/<asset_id>/norm_stats.json

Rounding to bfloat16 keeps 8 bits of mantissa (relative error <= 2**-9 per weight) and halves the size; a 2.6 M
parameter policy packs to ~4.2 MB. ``unpack`` writes an ordinary step dir (params in their original dtype, assets),
atomically, which ``serve_policy.py policy:checkpoint`` serves like any other checkpoint. Training state (optimizer)
is not packed: a packed checkpoint is for serving, not for resuming.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil

import ml_dtypes
import numpy as np

from openpi.training import checkpoints
from openpi.training import utils
from openpi.transfer.hub import TransferError

PARAMS_FILE = "params.bf16.npz"
MANIFEST = "manifest.json"
FORMAT = "openpi-packed-bf16/1"


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pack(step_dir: pathlib.Path | str, out_dir: pathlib.Path | str, *, config: str, note: str = "") -> dict:
    """Pack the params and assets of JAX step dir `step_dir` into `out_dir` (replaced if it exists)."""
    from openpi.models import model as _model

    step_dir, out_dir = pathlib.Path(step_dir), pathlib.Path(out_dir)
    if not (step_dir / "params").is_dir():
        raise TransferError(
            f"{step_dir} has no params/ dir: give a JAX checkpoint step dir, e.g. checkpoints/<config>/<exp>/<step>"
        )
    if not (step_dir / "assets").is_dir():
        raise TransferError(f"{step_dir} has no assets/ dir (norm stats): the packed policy could not be served")
    flat = {k: np.asarray(v) for k, v in utils.flatten_dict(_model.restore_params(step_dir / "params")).items()}
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    np.savez_compressed(tmp / PARAMS_FILE, **{k: v.astype(ml_dtypes.bfloat16).view(np.uint16) for k, v in flat.items()})
    shutil.copytree(step_dir / "assets", tmp / "assets")
    manifest = {
        "format": FORMAT,
        "config": config,
        "source": str(step_dir),
        "step": int(step_dir.name) if step_dir.name.isdigit() else None,
        "num_params": int(sum(v.size for v in flat.values())),
        "params": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in flat.items()},
        "sha256": _sha256(tmp / PARAMS_FILE),
        "note": note,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return manifest


def read_manifest(packed_dir: pathlib.Path | str) -> dict:
    packed_dir = pathlib.Path(packed_dir)
    path = packed_dir / MANIFEST
    if not path.is_file():
        raise TransferError(f"{packed_dir} is not a packed checkpoint: {MANIFEST} is missing")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise TransferError(f"{path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    return manifest


def unpack(packed_dir: pathlib.Path | str, checkpoint_dir: pathlib.Path | str) -> pathlib.Path:
    """Write `<checkpoint_dir>/<step>/{params, assets}` from a packed checkpoint; return the step dir.

    The params file is checked against the manifest's sha256, and every parameter against its dtype and shape."""
    packed_dir = pathlib.Path(packed_dir)
    manifest = read_manifest(packed_dir)
    params_file = packed_dir / PARAMS_FILE
    if _sha256(params_file) != manifest["sha256"]:
        raise TransferError(f"{params_file}: sha256 differs from {MANIFEST}; the file is damaged or was replaced")
    flat = {}
    with np.load(params_file) as npz:
        missing = sorted(set(manifest["params"]) - set(npz.files))
        if missing:
            raise TransferError(f"{params_file}: parameters listed in {MANIFEST} are missing: {missing[:5]}")
        for k, spec in manifest["params"].items():
            v = npz[k].view(ml_dtypes.bfloat16).astype(spec["dtype"])
            if list(v.shape) != spec["shape"]:
                raise TransferError(f"{params_file}: {k} has shape {list(v.shape)}, {MANIFEST} says {spec['shape']}")
            flat[k] = v
    step = manifest["step"] if manifest["step"] is not None else 0
    with checkpoints.atomic_step_dir(checkpoint_dir, step) as tmp:
        checkpoints.save_pytree(tmp / "params", {"params": utils.add_value_leaves(utils.unflatten_dict(flat))})
        shutil.copytree(packed_dir / "assets", tmp / "assets")
    return pathlib.Path(checkpoint_dir) / str(step)
