"""Data path of the small ALOHA-sim recipe: seconds per training batch from LeRobot's per-sample video decoding vs the
decoded-frame cache, both through the full transform pipeline (what the training loop waits for without prefetch).

    .venv/bin/python bench/bench_data_path.py --datasets-dir datasets_bench     # after make sim-benchmark's norm stats

Prints a markdown table for bench/RESULTS.md. Run it alone (no training beside it) for comparable numbers.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time

import tyro


@dataclasses.dataclass
class Args:
    config: str = "pi05_aloha_sim_small_privileged"
    datasets_dir: pathlib.Path = pathlib.Path("datasets")
    assets_base_dir: pathlib.Path = pathlib.Path("assets")
    batches: int = 20
    batch_size: int = 16


def time_batches(cfg, frame_cache: bool, batches: int) -> tuple[float, float]:
    """(seconds to the first batch, seconds per batch after it) through the real loader, without prefetch."""
    from openpi.training import data_loader

    data_config = cfg.data.create(cfg.assets_dirs, cfg.model)
    start = time.perf_counter()
    dataset = data_loader.create_torch_dataset(
        data_config, cfg.model.action_horizon, cfg.model, frame_cache=frame_cache
    )
    dataset = data_loader.transform_dataset(dataset, data_config)
    loader = data_loader.TorchDataLoader(
        dataset, local_batch_size=cfg.batch_size, shuffle=True, num_batches=batches + 1, framework="pytorch", prefetch=1
    )
    it = iter(loader)
    next(it)
    first = time.perf_counter() - start
    start = time.perf_counter()
    n = sum(1 for _ in it)
    return first, (time.perf_counter() - start) / max(n, 1)


def main(args: Args) -> None:
    os.environ["HF_LEROBOT_HOME"] = str(args.datasets_dir.resolve())
    from openpi.training import config as _config

    cfg = dataclasses.replace(
        _config.get_config(args.config), assets_base_dir=str(args.assets_base_dir), batch_size=args.batch_size
    )
    rows = []
    for cache in (False, True):
        first, per_batch = time_batches(cfg, cache, args.batches)
        rows.append((cache, first, per_batch))
    print(f"| data path ({args.config}, batch {args.batch_size}) | first batch (s) | s per batch |")
    print("|---|---|---|")
    for cache, first, per_batch in rows:
        name = "frame cache (decoded once)" if cache else "LeRobot per-sample video decoding"
        print(f"| {name} | {first:.1f} | {per_batch:.3f} |")
    print(f"ratio: {rows[0][2] / rows[1][2]:.1f}x faster per batch with the cache")


if __name__ == "__main__":
    main(tyro.cli(Args))
