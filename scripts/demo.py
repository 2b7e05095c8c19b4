"""`make demo`: the whole pipeline offline on a CPU, every stage through its real command.

1. scripted ALOHA-sim demonstrations -> LeRobot dataset   (python -m aloha_sim.generate)
2. norm stats                                             (scripts/compute_norm_stats.py)
3. train a tiny pi0.5 for a few hundred steps (JAX)       (scripts/train.py)
4. serve the checkpoint over websocket                    (scripts/serve_policy.py)
5. run the sim client for an episode, save the video      (python -m aloha_sim.main)
6. plot the training loss (PNG)
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time

from pipeline_stages import ROOT
from pipeline_stages import PolicyServer
from pipeline_stages import run_stage
import tyro


@dataclasses.dataclass
class Args:
    config: str = "debug_pi05_aloha_sim"
    exp_name: str = "demo"
    num_episodes: int = 3
    """Scripted demonstrations to generate."""
    train_steps: int = 200
    batch_size: int = 4
    image_height: int = 240
    image_width: int = 320
    out_dir: pathlib.Path = ROOT / "outputs" / "demo"
    datasets_dir: pathlib.Path = ROOT / "datasets"
    checkpoint_base_dir: pathlib.Path = ROOT / "checkpoints"
    assets_base_dir: pathlib.Path = ROOT / "assets"
    regenerate: bool = False
    """Regenerate the dataset even if it exists."""
    episode_steps: int = 400
    action_horizon: int = 10


def _run(stage: str, cmd: list, env: dict) -> float:
    return run_stage("demo", stage, cmd, env)


def plot_loss(metrics_file: pathlib.Path, out_png: pathlib.Path) -> pathlib.Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in rows if "loss" in r]
    losses = [r["loss"] for r in rows if "loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, losses)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("flow-matching loss")
    ax.set_title(f"training loss ({metrics_file.parent.parent.name}/{metrics_file.parent.name})")
    ax.grid(True, alpha=0.3)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def main(args: Args) -> None:
    py = sys.executable
    env = dict(
        os.environ,
        HF_LEROBOT_HOME=str(args.datasets_dir),
        JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"),
        PYTHONUNBUFFERED="1",
    )
    timings: dict[str, float] = {}
    t0 = time.time()
    repo = "aloha_sim_scripted"
    if args.regenerate or not (args.datasets_dir / repo / "meta" / "info.json").exists():
        timings["generate"] = _run(
            "generate demonstrations",
            [
                py,
                "-m",
                "aloha_sim.generate",
                "--repo-id",
                repo,
                "--num-episodes",
                str(args.num_episodes),
                "--image-height",
                str(args.image_height),
                "--image-width",
                str(args.image_width),
                "--overwrite",
            ],
            env,
        )
    timings["norm_stats"] = _run(
        "norm stats",
        [
            py,
            "scripts/compute_norm_stats.py",
            "--config-name",
            args.config,
            "--assets-base-dir",
            str(args.assets_base_dir),
        ],
        env,
    )
    timings["train"] = _run(
        "train",
        [
            py,
            "scripts/train.py",
            args.config,
            f"--exp-name={args.exp_name}",
            "--overwrite",
            f"--num-train-steps={args.train_steps}",
            f"--batch-size={args.batch_size}",
            f"--checkpoint-base-dir={args.checkpoint_base_dir}",
            f"--assets-base-dir={args.assets_base_dir}",
        ],
        env,
    )
    ckpt_root = args.checkpoint_base_dir / args.config / args.exp_name
    steps = sorted(int(p.name) for p in ckpt_root.iterdir() if p.name.isdigit())
    ckpt = ckpt_root / str(steps[-1])

    video_dir = args.out_dir / "videos"
    with PolicyServer(args.config, ckpt, env) as server:
        timings["serve_startup"] = server.startup_s
        timings["sim_episode"] = _run(
            "sim episode",
            [
                py,
                "-m",
                "aloha_sim.main",
                "--host",
                "127.0.0.1",
                "--port",
                str(server.port),
                "--out-dir",
                str(video_dir),
                "--num-episodes",
                "1",
                "--max-episode-steps",
                str(args.episode_steps),
                "--action-horizon",
                str(args.action_horizon),
            ],
            env,
        )
    plot = plot_loss(ckpt_root / "metrics.jsonl", args.out_dir / "loss.png")
    summary = json.loads((video_dir / "summary.json").read_text())
    total = time.time() - t0
    print("\n=== [demo] finished in {:.0f}s: {}".format(total, ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())))
    print(f"    checkpoint : {ckpt}")
    print(f"    loss plot  : {plot}")
    print(f"    video      : {summary['videos'][0] if summary['videos'] else '(none)'}")
    print(
        f"    sim reward : {summary['rewards']} (gym-aloha's max reward; a tiny model after a few hundred CPU steps is a pipeline check, not a trained policy)"
    )


if __name__ == "__main__":
    main(tyro.cli(Args))
