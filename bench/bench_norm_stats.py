"""Norm stats: fast parquet-only path vs the full pipeline (video decoding) on a generated Piper-like dataset,
measured side by side in one run. Prints a markdown table."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tempfile
import time

import numpy as np


def main(episodes: int = 6, length: int = 60):
    with tempfile.TemporaryDirectory() as tmp:
        home = pathlib.Path(tmp)
        os.environ["HF_LEROBOT_HOME"] = str(home)
        import lerobot.utils.constants as lc

        lc.HF_LEROBOT_HOME = home
        import lerobot.datasets.lerobot_dataset as ld

        if hasattr(ld, "HF_LEROBOT_HOME"):
            ld.HF_LEROBOT_HOME = home
        from robot_piper import collect

        collect.main(
            collect.Args(
                repo_id="bench_piper",
                num_episodes=episodes,
                episode_steps=length,
                sim=True,
                image_height=240,
                image_width=320,
            )
        )
        from openpi.training import config as _config
        from openpi.training import norm_stats

        base = _config.get_config("pi05_piper_pick_cube")
        cfg = dataclasses.replace(
            base,
            data=dataclasses.replace(base.data, repo_id="bench_piper"),
            batch_size=16,
            num_workers=0,
            assets_base_dir=str(home / "assets"),
        )
        t = time.perf_counter()
        _, fast, n = norm_stats.compute(cfg)
        t_fast = time.perf_counter() - t
        t = time.perf_counter()
        _, slow, _ = norm_stats.compute(cfg, slow=True)
        t_slow = time.perf_counter() - t
        same = all(
            np.allclose(getattr(fast[k], f), getattr(slow[k], f), atol=1e-6)
            for k in fast
            for f in ("mean", "std", "q01", "q99")
        )
    print(f"{n} frames ({episodes} episodes, 2 cameras 320x240), identical stats: {same}\n")
    print("| norm stats path | seconds | frames/s |")
    print("|---|---|---|")
    print(f"| full pipeline (decodes video) | {t_slow:.2f} | {n / t_slow:.0f} |")
    print(f"| parquet columns only (default) | {t_fast:.2f} | {n / t_fast:.0f} |")
    print(f"| speed-up | {t_slow / t_fast:.1f}x | |")


if __name__ == "__main__":
    main()
