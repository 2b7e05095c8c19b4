"""Entry point for multi-process / SIGKILL tests of the JAX trainer on the toy model.

    python training_toy_jax_main.py <ckpt_base> <num_steps> <resume 0|1> <out.json> [kill_at_step]

Multi-process: set OPENPI_COORDINATOR_ADDRESS / OPENPI_NUM_PROCESSES / OPENPI_PROCESS_ID.
"""

import json
import os
import pathlib
import signal
import sys

from openpi.training import sharding

sharding.maybe_initialize_distributed()

import jax  # noqa: E402
import training_toy as toy  # noqa: E402

from openpi.training import train_jax  # noqa: E402


def main():
    base, steps, resume, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
    kill_at = int(sys.argv[5]) if len(sys.argv) > 5 else None
    n, i = jax.process_count(), jax.process_index()
    per = 8 // n
    inner = toy.toy_data_factory(8, slice(i * per, (i + 1) * per))

    def factory(start):
        for k, b in enumerate(inner(start)):
            if kill_at is not None and start + k == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            yield b

    cfg = toy.ToyTrainConfig(checkpoint_base_dir=base, num_train_steps=steps, save_interval=5, resume=resume)
    res = train_jax.train(cfg, data_factory=factory, progress=False)
    if i == 0:
        pathlib.Path(out).write_text(json.dumps({str(k): v for k, v in res.losses.items()}))


if __name__ == "__main__":
    main()
