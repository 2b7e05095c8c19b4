"""JAX training: ``python scripts/train.py <config> --exp-name=NAME [--overwrite|--resume] [--any-TrainConfig-field X]``.

``--dry-run`` (``make train ... DRY_RUN=1``): check the data config, dataset, norm stats and first batch, print the
abstract train state (parameter counts, sharding, memory per device) and the batch shapes, and exit without
downloading or loading weights.

Multi-host (one process per host, all with the same arguments):
``--coordinator-address HOST:PORT --num-processes N --process-id I`` (or the env vars OPENPI_COORDINATOR_ADDRESS,
OPENPI_NUM_PROCESSES, OPENPI_PROCESS_ID; ``--distributed-auto`` on SLURM/TPU pods). See docs/training.md.
"""

import logging
import os
import sys

_MULTIHOST_FLAGS = {
    "--coordinator-address": "OPENPI_COORDINATOR_ADDRESS",
    "--num-processes": "OPENPI_NUM_PROCESSES",
    "--process-id": "OPENPI_PROCESS_ID",
    "--local-device-ids": "OPENPI_LOCAL_DEVICE_IDS",
}


def _pop_multihost_flags(argv: list[str]) -> tuple[list[str], bool]:
    """Move the multi-host flags into env vars and take out --dry-run (they are not TrainConfig fields)."""
    out, i, dry_run = [], 0, False
    while i < len(argv):
        arg = argv[i]
        key, _, val = arg.partition("=")
        key = key.replace("_", "-")
        if key in _MULTIHOST_FLAGS:
            if not val:
                if i + 1 >= len(argv):
                    raise SystemExit(f"{key} needs a value")
                val, i = argv[i + 1], i + 1
            os.environ[_MULTIHOST_FLAGS[key]] = val
        elif key == "--distributed-auto":
            os.environ["OPENPI_DISTRIBUTED"] = "auto"
        elif key == "--dry-run":
            dry_run = True
        else:
            out.append(arg)
        i += 1
    return out, dry_run


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    for noisy in ("absl", "orbax", "jax._src"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    rest, dry_run = _pop_multihost_flags(sys.argv[1:])
    sys.argv = [sys.argv[0], *rest]
    from openpi.training import sharding

    sharding.maybe_initialize_distributed()  # must precede any other JAX call
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.expanduser("~/.cache/jax"))
    from openpi.training import config as _config
    from openpi.training import train_jax

    train_jax.train(_config.cli(), dry_run=dry_run)


if __name__ == "__main__":
    main()
