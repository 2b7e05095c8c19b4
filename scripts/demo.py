"""`make demo`: the whole pipeline offline on a CPU, every stage through its real command.

1. scripted ALOHA-sim demonstrations -> LeRobot dataset   (python -m aloha_sim.generate)
2. norm stats                                             (scripts/compute_norm_stats.py)
3. train a tiny pi0.5 for a few hundred steps (JAX)       (scripts/train.py)
4. serve the checkpoint over websocket                    (scripts/serve_policy.py)
5. run the sim client for an episode, save the video      (python -m aloha_sim.main)
6. plot the training loss (PNG)
7. the SHIPPED policy: unpack examples/aloha_sim/policy (a checkpoint trained by `make sim-benchmark`, packed in
   bfloat16 by scripts/transfer.py pack), serve it and evaluate a few episodes with videos
   (python -m aloha_sim.evaluate), so the cube is seen transferred. Steps 3-5 are a pipeline check: a tiny model after
   a few hundred CPU steps does not do the task.
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
    shipped_policy: pathlib.Path = ROOT / "examples" / "aloha_sim" / "policy"
    """Packed checkpoint served in the last stage (see examples/aloha_sim/README.md for how it was trained)."""
    shipped_episodes: int = 3
    """Episodes of the shipped policy (0 skips the stage)."""
    shipped_episode_steps: int = 400
    shipped_executor: str = "ensemble"
    """How the shipped policy's chunks are executed (aloha_sim.evaluate --executor); its success rates per executor
    are in bench/RESULTS.md."""


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
    shipped = run_shipped(args, env, timings) if args.shipped_episodes > 0 else None
    summary = json.loads((video_dir / "summary.json").read_text())
    total = time.time() - t0
    print("\n=== [demo] finished in {:.0f}s: {}".format(total, ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())))
    print(f"    checkpoint : {ckpt}")
    print(f"    loss plot  : {plot}")
    print(f"    video      : {summary['videos'][0] if summary['videos'] else '(none)'}")
    print(
        f"    sim reward : {summary['rewards']} (gym-aloha's max reward; a tiny model after a few hundred CPU steps is a pipeline check, not a trained policy)"
    )
    if shipped is not None:
        pol, videos = shipped["policy"], shipped["videos"]
        print(f"    SHIPPED policy ({shipped['config']['checkpoint_label']}):")
        print(
            f"      success  : {pol['successes']}/{pol['episodes']} episodes, mean max reward {pol['mean_max_reward']:.2f}"
        )
        for kind, path in videos.items():
            print(f"      {kind:8} : {path}")


def run_shipped(args: Args, env: dict, timings: dict) -> dict:
    """Unpack the shipped policy, serve it and evaluate `shipped_episodes` episodes (videos of a success/failure)."""
    from openpi.training import config as _config
    from openpi.transfer import packed as packed_checkpoint

    manifest = packed_checkpoint.read_manifest(args.shipped_policy)
    config = manifest["config"]
    privileged = _config.get_config(config).data.env_state_dim > 0
    step_dir = packed_checkpoint.unpack(args.shipped_policy, args.checkpoint_base_dir / config / "shipped")
    label = (
        f"{config} step {manifest['step']}, packed in bf16{', PRIVILEGED state: sim cube pose' if privileged else ''}"
    )
    out = args.out_dir / "shipped"
    with PolicyServer(config, step_dir, env) as server:
        cmd = [sys.executable, "-m", "aloha_sim.evaluate", "--port", str(server.port), "--out-dir", str(out)]
        cmd += ["--num-episodes", str(args.shipped_episodes), "--executor", args.shipped_executor, "--no-expert"]
        cmd += ["--max-episode-steps", str(args.shipped_episode_steps), *(["--privileged"] if privileged else [])]
        timings["shipped_policy"] = _run("shipped policy", cmd, env)
    summary = json.loads((out / "summary.json").read_text())
    summary["config"]["checkpoint_label"] = label
    return summary


if __name__ == "__main__":
    main(tyro.cli(Args))
