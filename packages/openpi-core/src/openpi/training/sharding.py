"""Device mesh and FSDP sharding rules for JAX training (single host and multi-host)."""

from __future__ import annotations

import logging
import os

import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

logger = logging.getLogger("openpi.training")

BATCH_AXIS = "batch"
FSDP_AXIS = "fsdp"
DATA_AXIS = (BATCH_AXIS, FSDP_AXIS)
MIN_FSDP_BYTES = 4 * 2**20


def maybe_initialize_distributed() -> bool:
    """Multi-host JAX: call ``jax.distributed.initialize`` from env vars (no-op when unset).

    ``OPENPI_COORDINATOR_ADDRESS=host:port``, ``OPENPI_NUM_PROCESSES=N``, ``OPENPI_PROCESS_ID=i`` (and optionally
    ``OPENPI_LOCAL_DEVICE_IDS=0,1``). On managed clusters (SLURM, GKE/TPU) ``OPENPI_DISTRIBUTED=auto`` lets JAX
    auto-detect everything. Must run before any other JAX call.
    """
    addr = os.environ.get("OPENPI_COORDINATOR_ADDRESS")
    if os.environ.get("OPENPI_DISTRIBUTED") == "auto":
        jax.distributed.initialize()
        return True
    if not addr:
        return False
    try:
        num = int(os.environ["OPENPI_NUM_PROCESSES"])
        pid = int(os.environ["OPENPI_PROCESS_ID"])
    except KeyError as e:
        raise ValueError(f"OPENPI_COORDINATOR_ADDRESS is set but {e.args[0]} is not; set all three") from None
    local = os.environ.get("OPENPI_LOCAL_DEVICE_IDS")
    kwargs = {"local_device_ids": [int(x) for x in local.split(",")]} if local else {}
    if jax.config.jax_platforms in ("cpu",) or os.environ.get("JAX_PLATFORMS") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=addr, num_processes=num, process_id=pid, **kwargs)
    logger.info("jax.distributed initialized: process %d/%d, %d global devices", pid, num, jax.device_count())
    return True


def make_mesh(fsdp_devices: int) -> Mesh:
    n = jax.device_count()
    if n % fsdp_devices != 0:
        raise ValueError(f"fsdp_devices={fsdp_devices} must divide the number of devices ({n})")
    devices = np.asarray(jax.devices()).reshape(n // fsdp_devices, fsdp_devices)
    return Mesh(devices, (BATCH_AXIS, FSDP_AXIS))


def data_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def fsdp_sharding(tree, mesh: Mesh, *, min_size_bytes: int = MIN_FSDP_BYTES):
    """Shard arrays of >= 4 MiB with ndim >= 2 along their largest axis divisible by the fsdp size."""
    fsdp = mesh.shape[FSDP_AXIS]

    def rule(x):
        shape = getattr(x, "shape", ())
        if fsdp == 1 or len(shape) < 2:
            return replicated(mesh)
        if np.prod(shape) * np.dtype(x.dtype).itemsize < min_size_bytes:
            return replicated(mesh)
        for axis in np.argsort(shape)[::-1]:
            if shape[axis] % fsdp == 0:
                spec = [None] * len(shape)
                spec[axis] = FSDP_AXIS
                return NamedSharding(mesh, P(*spec))
        return replicated(mesh)

    return jax.tree.map(rule, tree)


def to_global_batch(local_batch, sharding: NamedSharding):
    """Per-process host batch -> one global jax.Array per leaf (works for one or many processes)."""
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)


def to_host(tree):
    """Global (possibly non-addressable) arrays -> numpy on every process."""
    from jax.experimental import multihost_utils

    def one(x):
        if not isinstance(x, jax.Array):
            return np.asarray(x)
        if x.is_fully_addressable:
            return np.asarray(x)
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(one, tree)
