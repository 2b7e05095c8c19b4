"""PyTorch training, single process or DDP under torchrun (see docs/training.md).

    python scripts/train_pytorch.py <config> --exp-name NAME [--overwrite|--resume] [TrainConfig overrides]
    torchrun --standalone --nnodes=1 --nproc_per_node=8 scripts/train_pytorch.py <config> --exp-name NAME

Trainer-only flags: --precision {float32,bfloat16,bf16_autocast}, --no-gradient-checkpointing, --no-ema,
--trainable-regex REGEX (params to train; default: all, or LoRA-only for *_lora variants), --device cpu|cuda:N,
--dry-run (check data, norm stats and the first batch, print the abstract model/optimizer state; no weights).
Underscore spellings of flags (``--exp_name``, ``--save_interval``) are accepted as in upstream's README.
"""

import argparse
import logging
import os
import sys


def _parse(argv: list[str]):
    argv = [
        a.split("=", 1)[0].replace("_", "-") + a[len(a.split("=", 1)[0]) :] if a.startswith("--") else a for a in argv
    ]
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--precision", choices=["float32", "bfloat16", "bf16-autocast", "bf16_autocast"])
    p.add_argument("--no-gradient-checkpointing", action="store_true")
    p.add_argument("--no-ema", action="store_true")
    p.add_argument("--trainable-regex")
    p.add_argument("--device")
    p.add_argument("--dry-run", action="store_true")
    return p.parse_known_args(argv)


def main() -> None:
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(levelname)s %(message)s",
        force=True,
    )
    opts, rest = _parse(sys.argv[1:])
    sys.argv = [sys.argv[0], *rest]
    from openpi.training import config as _config
    from openpi.training import train_pytorch

    options = train_pytorch.TorchOptions(
        precision=opts.precision.replace("-", "_") if opts.precision else None,
        gradient_checkpointing=not opts.no_gradient_checkpointing,
        ema_decay=None if opts.no_ema else "config",
        trainable_regex=opts.trainable_regex,
        device=opts.device,
    )
    train_pytorch.train(_config.cli(), options=options, dry_run=opts.dry_run)


if __name__ == "__main__":
    main()
