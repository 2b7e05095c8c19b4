"""Checkpoint directories for JAX and PyTorch training (upstream openpi layout).

Layout::

    checkpoints/<config>/<exp>/
        metrics.jsonl                # one JSON object per log step
        wandb_id.txt                 # only when wandb is on
        <step>/params/               # JAX: orbax PyTree, {"params": {... leaf: {"value": arr}}} (EMA weights if EMA on)
        <step>/train_state/          # JAX: step, params, ema_params, opt_state
        <step>/model.safetensors     # PyTorch (+ optimizer.pt, metadata.pt)
        <step>/assets/<asset_id>/norm_stats.json

A step directory is written under ``tmp_<step>`` and renamed to ``<step>`` only when complete (``os.rename`` is
atomic on one filesystem), so a run killed mid-save never leaves a numeric directory that could be picked up by
``--resume`` or by serving. Only all-digit directory names count as steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
import contextlib
import json
import logging
import os
import pathlib
import shutil
from typing import Any

import numpy as np

from openpi.shared import normalize
from openpi.training import utils

logger = logging.getLogger("openpi.training")

TMP_PREFIX = "tmp_"


# ----------------------------------------------------------------------------------------------------------------
# Framework-independent directory management
# ----------------------------------------------------------------------------------------------------------------
def initialize_checkpoint_dir(checkpoint_dir: pathlib.Path | str, *, overwrite: bool, resume: bool) -> bool:
    """Prepare ``checkpoint_dir``; return True when training should resume from its latest step."""
    checkpoint_dir = pathlib.Path(checkpoint_dir)
    if overwrite and resume:
        raise ValueError("--overwrite and --resume are mutually exclusive: pick one")
    if checkpoint_dir.exists():
        if overwrite:
            shutil.rmtree(checkpoint_dir)
            logger.info("Wiped checkpoint directory %s (--overwrite)", checkpoint_dir)
        elif resume:
            cleanup_partial(checkpoint_dir)
            if latest_step(checkpoint_dir) is None:
                logger.info("--resume given but %s holds no complete step; starting from scratch", checkpoint_dir)
                return False
            return True
        elif any(checkpoint_dir.iterdir()):
            raise FileExistsError(
                f"Checkpoint directory {checkpoint_dir} already exists. Pass --resume to continue training from "
                f"its latest step, or --overwrite to delete it and start over (or choose another --exp-name)."
            )
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    return False


def list_steps(checkpoint_dir: pathlib.Path | str) -> list[int]:
    """Complete step directories, ascending."""
    d = pathlib.Path(checkpoint_dir)
    if not d.is_dir():
        return []
    return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit())


def latest_step(checkpoint_dir: pathlib.Path | str) -> int | None:
    steps = list_steps(checkpoint_dir)
    return steps[-1] if steps else None


def cleanup_partial(checkpoint_dir: pathlib.Path | str) -> None:
    """Remove ``tmp_*`` leftovers of a save that was interrupted."""
    for p in pathlib.Path(checkpoint_dir).glob(f"{TMP_PREFIX}*"):
        logger.warning("Removing incomplete checkpoint %s", p)
        shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def atomic_step_dir(checkpoint_dir: pathlib.Path | str, step: int) -> Iterator[pathlib.Path]:
    """Yield a temp dir to fill; on success it becomes ``<checkpoint_dir>/<step>`` in one rename."""
    checkpoint_dir = pathlib.Path(checkpoint_dir)
    tmp = checkpoint_dir / f"{TMP_PREFIX}{step}"
    final = checkpoint_dir / str(step)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_tree(tmp)
    if final.exists():  # re-saving a step (e.g. the last step after a resume): replace it
        old = checkpoint_dir / f"{TMP_PREFIX}{step}.old"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_dir(checkpoint_dir)


def prune_checkpoints(
    checkpoint_dir: pathlib.Path | str, *, keep_period: int | None, max_to_keep: int = 1
) -> list[int]:
    """Delete old steps: keep the newest ``max_to_keep`` and every step divisible by ``keep_period``."""
    steps = list_steps(checkpoint_dir)
    keep = set(steps[-max_to_keep:]) if max_to_keep > 0 else set()
    if keep_period:
        keep |= {s for s in steps if s % keep_period == 0}
    removed = [s for s in steps if s not in keep]
    for s in removed:
        shutil.rmtree(pathlib.Path(checkpoint_dir) / str(s), ignore_errors=True)
    return removed


def save_assets(step_dir: pathlib.Path, norm_stats: Mapping | None, asset_id: str | None) -> None:
    """Write ``assets/<asset_id>/norm_stats.json`` (upstream format) when norm stats are known."""
    if norm_stats is None or asset_id is None:
        return
    out = step_dir / "assets" / asset_id
    out.mkdir(parents=True, exist_ok=True)
    if not _is_plain_stats(norm_stats):
        normalize.save(out, norm_stats)
        return
    # plain dicts {key: {"mean": [...], ...}}: write upstream's JSON layout directly
    payload = {
        "norm_stats": {
            k: {f: np.asarray(v).tolist() for f, v in _stats_fields(st).items()} for k, st in norm_stats.items()
        }
    }
    (out / "norm_stats.json").write_text(json.dumps(payload, indent=2))


def _is_plain_stats(norm_stats: Mapping) -> bool:
    return all(isinstance(v, Mapping) for v in norm_stats.values())


def _stats_fields(st) -> dict:
    if isinstance(st, Mapping):
        return {k: v for k, v in st.items() if v is not None}
    return {k: getattr(st, k) for k in ("mean", "std", "q01", "q99") if getattr(st, k, None) is not None}


def _fsync_tree(root: pathlib.Path) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)


def _fsync_dir(d: pathlib.Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ----------------------------------------------------------------------------------------------------------------
# JAX / orbax
# ----------------------------------------------------------------------------------------------------------------
def _checkpointer():
    """orbax PyTree checkpointer. With several JAX processes, each one reads/writes on its own (no global
    barriers): the trainer gathers host numpy copies and only process 0 writes."""
    import jax
    import orbax.checkpoint as ocp

    if jax.process_count() == 1:
        return ocp.PyTreeCheckpointer()
    me = jax.process_index()
    mp = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me}, barrier_sync_key_prefix=f"p{me}")
    return ocp.Checkpointer(ocp.PyTreeCheckpointHandler(multiprocessing_options=mp), multiprocessing_options=mp)


def save_pytree(path: pathlib.Path, tree: Any) -> None:
    """Save a pytree of arrays with orbax's PyTree handler (OCDBT), the format upstream writes."""
    with _checkpointer() as ckptr:
        ckptr.save(pathlib.Path(path).absolute(), tree)


def restore_pytree(path: pathlib.Path | str, *, sharding=None) -> Any:
    """Restore an orbax PyTree dir as numpy arrays (or as jax arrays with ``sharding``)."""
    import jax
    import orbax.checkpoint as ocp

    path = pathlib.Path(path).absolute()
    with _checkpointer() as ckptr:
        meta = ckptr.metadata(path)
        tree = getattr(meta, "item_metadata", meta)
        tree = getattr(tree, "tree", tree)
        if sharding is None:
            restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        else:
            restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=sharding), tree)
        return ckptr.restore(path, args=ocp.args.PyTreeRestore(item=tree, restore_args=restore_args))


def save_jax_checkpoint(
    checkpoint_dir: pathlib.Path | str,
    step: int,
    *,
    params: Mapping,
    train_state: Mapping,
    norm_stats: Mapping | None = None,
    asset_id: str | None = None,
    keep_period: int | None = None,
    max_to_keep: int = 1,
) -> pathlib.Path:
    """Write ``<step>/{params, train_state, assets}`` atomically and prune old steps.

    ``params`` is the nested pure dict served at inference (EMA weights when EMA is on); it is stored as
    ``{"params": ...leaf: {"value": arr}}`` exactly like upstream's nnx.State checkpoints.
    """
    import jax

    params_np = jax.tree.map(np.asarray, dict(params))
    state_np = jax.tree.map(np.asarray, dict(train_state))
    with atomic_step_dir(checkpoint_dir, step) as tmp:
        save_pytree(tmp / "params", {"params": utils.add_value_leaves(params_np)})
        save_pytree(tmp / "train_state", state_np)
        save_assets(tmp, norm_stats, asset_id)
    prune_checkpoints(checkpoint_dir, keep_period=keep_period, max_to_keep=max_to_keep)
    return pathlib.Path(checkpoint_dir) / str(step)


def flatten_opt_state(opt_state: Any) -> dict[str, Any]:
    """optax states hold namedtuples; store them as ``{"00000": leaf, ...}`` in tree-leaf order."""
    import jax

    return {f"{i:05d}": leaf for i, leaf in enumerate(jax.tree.leaves(opt_state))}


def unflatten_opt_state(flat: Mapping[str, Any], template: Any) -> Any:
    import jax

    leaves, treedef = jax.tree.flatten(template)
    if len(flat) != len(leaves):
        raise ValueError(
            f"Optimizer state in the checkpoint has {len(flat)} arrays but the current optimizer has {len(leaves)}:"
            " the optimizer or the freeze filter changed since the checkpoint was written. Use --overwrite."
        )
    restored = [np.asarray(flat[f"{i:05d}"]) for i in range(len(leaves))]
    for i, (a, b) in enumerate(zip(restored, leaves, strict=True)):
        if tuple(a.shape) != tuple(np.shape(b)):
            raise ValueError(f"Optimizer state leaf {i} has shape {a.shape} in the checkpoint, expected {np.shape(b)}")
    return jax.tree.unflatten(treedef, restored)


def restore_jax_train_state(step_dir: pathlib.Path | str) -> dict:
    """Load ``<step>/train_state`` as numpy (keys: step, params, opt_state and optionally ema_params)."""
    return restore_pytree(pathlib.Path(step_dir) / "train_state")
