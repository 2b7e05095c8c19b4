"""`make sim-benchmark`: generate -> norm stats -> train -> serve -> evaluate, unattended, with a final table.

    make sim-benchmark TIER=privileged          # pipeline check: state carries the (privileged) sim cube pose
    make sim-benchmark TIER=pixels              # camera + joint state only
    make sim-benchmark ARGS="--smoke"           # CI-sized run of the same stages (minutes)

Every stage is the real command (aloha_sim.generate, scripts/compute_norm_stats.py, scripts/train.py,
scripts/serve_policy.py, aloha_sim.evaluate). Existing stages are reused: the dataset if it exists, a finished
training run if its final checkpoint exists (`--retrain` redoes it). Each saved checkpoint is a point of the learning
curve (`--curve-episodes` episodes each); the last one is evaluated on `--final-episodes`. With `--rtc`, the final
checkpoint is also run with every executor at every inference delay on the same seeds (aloha_sim.evaluate).
Results: `<out-dir>/<tier>/{results.json,results.md,curve.png,rtc.png}` and the videos of each evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import time

from pipeline_stages import ROOT
from pipeline_stages import PolicyServer
from pipeline_stages import run_stage
import tyro

from openpi.training import config as _config

SHARD_SEED_STRIDE = 500  # shard i of the generation uses seeds 500*i..; evaluation uses 100000..


@dataclasses.dataclass(frozen=True)
class Tier:
    config: str
    render: tuple[int, int] = (120, 160)
    """Camera render (height, width) of the demonstrations and of the evaluation episodes."""
    num_demos: int = 60
    """Demonstrations generated when the dataset does not exist yet."""


TIERS = {
    "privileged": Tier("pi0_aloha_sim_small_privileged"),
    "pixels": Tier("pi0_aloha_sim_small"),
    "pixels-hires": Tier("pi0_aloha_sim_small_hires", (240, 320)),
    "pixels-cube-target": Tier("pi0_aloha_sim_small_cube_target", num_demos=200),
    "pixels-cube-target-medium": Tier("pi0_aloha_sim_cube_target_medium_vision", num_demos=200),
}


@dataclasses.dataclass
class Args:
    tier: str = "privileged"
    """privileged (pipeline check: cube pose in the state) | pixels (camera + joints) | pixels-hires (the same at a
    240x320 render) | pixels-cube-target (pixels, trained to also predict the cube pose: a training-only label) |
    pixels-cube-target-medium (the same with a larger vision tower)"""
    config: str | None = None
    """Train config instead of the tier's default (e.g. pi05_aloha_sim_small_privileged, the pi0.5 variant)."""
    exp_name: str = "bench"
    repo_id: str | None = None
    """Dataset to generate. Default: the config's data repo_id (the dataset it trains on)."""
    num_demos: int | None = None
    """Default: the tier's (60; pixels-cube-target 200). An existing dataset must have this many episodes."""
    generate_workers: int = 2
    """Generation processes (seed shards merged into one dataset)."""
    train_steps: int | None = None
    """Default: the config's num_train_steps. The config's cosine schedule is stretched to it (one schedule)."""
    save_interval: int | None = None
    """Checkpoint (= learning-curve point) every N steps. Default: the config's save_interval."""
    batch_size: int | None = None
    curve_episodes: int = 20
    final_episodes: int = 50
    final_executors: tuple[str, ...] = ("ensemble",)
    """The final checkpoint is also evaluated with these executors (same seeds; aloha_sim.evaluate --executor). The
    curve itself is chunked execution (sync)."""
    rtc: bool = False
    """Also sweep executors x inference delays on the final checkpoint."""
    rtc_executors: tuple[str, ...] = ("sync", "naive", "ensemble", "rtc")
    rtc_delays: tuple[int, ...] = (0, 2, 5, 10)
    rtc_episodes: int = 20
    retrain: bool = False
    smoke: bool = False
    """CI-sized: 2 demos, a few training steps, 2 short evaluation episodes, no RTC sweep."""
    datasets_dir: pathlib.Path = ROOT / "datasets"
    checkpoint_base_dir: pathlib.Path = ROOT / "checkpoints"
    assets_base_dir: pathlib.Path = ROOT / "assets"
    out_dir: pathlib.Path = ROOT / "outputs" / "sim_benchmark"


def _run(stage: str, cmd: list, env: dict) -> float:
    return run_stage("sim-benchmark", stage, cmd, env)


def _evaluate(server: PolicyServer, out: pathlib.Path, env: dict, *, episodes: int, privileged: bool, extra=()) -> dict:
    cmd = [sys.executable, "-m", "aloha_sim.evaluate", "--port", str(server.port), "--num-episodes", str(episodes)]
    cmd += ["--out-dir", str(out), *(["--privileged"] if privileged else []), *extra]
    _run(f"evaluate -> {out}", cmd, env)
    return json.loads((out / "summary.json").read_text())


def generate_sharded(
    repo_id: str,
    num_demos: int,
    workers: int,
    datasets_dir: pathlib.Path,
    env: dict,
    extra=(),
    render: tuple[int, int] = (120, 160),
) -> None:
    """aloha_sim.generate in `workers` processes (shard i: seeds from SHARD_SEED_STRIDE * i), merged with LeRobot's
    aggregate_datasets. Rendering is single-threaded, so two processes use both cores of a 2-core machine."""
    flags = ["--image-height", str(render[0]), "--image-width", str(render[1]), "--fast-render", "--privileged"]
    flags += ["--overwrite", *extra]
    if workers <= 1:
        cmd = [sys.executable, "-m", "aloha_sim.generate", "--repo-id", repo_id, "--num-episodes", str(num_demos)]
        _run("generate demonstrations", [*cmd, *flags], env)
        return
    counts = [num_demos // workers + (i < num_demos % workers) for i in range(workers)]
    shards = [f"{repo_id}.shard{i}" for i in range(workers)]
    procs = []
    print(f"\n=== [sim-benchmark] generate {num_demos} demonstrations in {workers} processes", flush=True)
    for i, (shard, n) in enumerate(zip(shards, counts, strict=True)):
        cmd = [sys.executable, "-m", "aloha_sim.generate", "--repo-id", shard, "--num-episodes", str(n)]
        cmd += ["--seed", str(SHARD_SEED_STRIDE * i), *flags]
        log = open(datasets_dir / f".{shard}.log", "w")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log))
    for proc, log in procs:
        proc.wait()
        log.close()
        if proc.returncode:
            raise RuntimeError(f"generate shard failed (exit {proc.returncode}); see {log.name}")
    merge_shards(shards, repo_id, datasets_dir)


def merge_shards(shards: list[str], repo_id: str, datasets_dir: pathlib.Path) -> None:
    """Merge generated shards into `repo_id` (written beside, renamed into place when complete)."""
    import shutil

    from lerobot.datasets.aggregate import aggregate_datasets

    tmp = datasets_dir / f".{repo_id}.merging"
    shutil.rmtree(tmp, ignore_errors=True)
    aggregate_datasets(shards, repo_id, roots=[datasets_dir / s for s in shards], aggr_root=tmp)
    final = datasets_dir / repo_id
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for shard in shards:
        shutil.rmtree(datasets_dir / shard)


def _pct(s: dict) -> str:
    lo, hi = s["success_ci95"]
    return f"{s['successes']}/{s['episodes']} = {100 * s['success_rate']:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def paired_difference(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Mean of a - b over paired episodes (same seeds) and its 95% interval (normal approximation)."""
    import numpy as np

    diff = np.asarray(a, float) - np.asarray(b, float)
    if len(diff) < 2:
        return float(diff.mean()) if len(diff) else 0.0, float("nan"), float("nan")
    half = 1.959964 * diff.std(ddof=1) / np.sqrt(len(diff))
    return float(diff.mean()), float(diff.mean() - half), float(diff.mean() + half)


def rtc_table(rows: list[dict]) -> list[str]:
    """Per executor and delay: success [CI], reward, time, jerk; then RTC minus each other executor, paired."""
    lines = [
        "| executor | d | success [95% CI] | mean max reward | episode time (s) | mean jerk |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["executor"], r["delay"])):
        s = r["policy"]
        lines.append(
            f"| {r['executor']} | {r['delay']} | {_pct(s)} | {s['mean_max_reward']:.2f} | "
            f"{s['mean_episode_time_s']:.2f} | {s['jerk_mean']:.4f} |"
        )
    by = {(r["executor"], r["delay"]): {e["seed"]: e for e in r["episodes"]} for r in rows}
    lines += ["", "Paired differences on the same seeds (RTC minus the other; mean [95% interval]):", ""]
    lines += ["| d | vs | success | mean jerk |", "|---|---|---|---|"]
    for (kind, d), eps in sorted(by.items()):
        if kind == "rtc" or ("rtc", d) not in by:
            continue
        rtc = by[("rtc", d)]
        seeds = sorted(set(rtc) & set(eps))
        ds = paired_difference([rtc[k]["success"] for k in seeds], [eps[k]["success"] for k in seeds])
        dj = paired_difference([rtc[k]["jerk_mean"] for k in seeds], [eps[k]["jerk_mean"] for k in seeds])
        lines.append(
            f"| {d} | {kind} | {100 * ds[0]:+.0f} pp [{100 * ds[1]:+.0f}, {100 * ds[2]:+.0f}] "
            f"| {dj[0]:+.4f} [{dj[1]:+.4f}, {dj[2]:+.4f}] |"
        )
    if ("rtc", 0) in by:
        base = by[("rtc", 0)]
        for (kind, d), eps in sorted(by.items()):
            if kind == "rtc" and d > 0:
                seeds = sorted(set(base) & set(eps))
                ds = paired_difference([eps[k]["success"] for k in seeds], [base[k]["success"] for k in seeds])
                lines.append(f"| {d} | rtc d=0 | {100 * ds[0]:+.0f} pp [{100 * ds[1]:+.0f}, {100 * ds[2]:+.0f}] | |")
    return lines


def plot_curve(points: list[dict], path: pathlib.Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["step"] for p in points]
    rate = [100 * p["policy"]["success_rate"] for p in points]
    lo = [100 * p["policy"]["success_ci95"][0] for p in points]
    hi = [100 * p["policy"]["success_ci95"][1] for p in points]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, rate, "o-", label="policy")
    ax.fill_between(steps, lo, hi, alpha=0.2, label="95% Wilson interval")
    if points and "expert" in points[-1]:
        ax.axhline(100 * points[-1]["expert"]["success_rate"], ls="--", c="gray", label="scripted expert")
    ax.set_xlabel("training step")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_rtc(rows: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for kind in sorted({r["executor"] for r in rows}):
        rs = sorted((r for r in rows if r["executor"] == kind), key=lambda r: r["delay"])
        d = [r["delay"] for r in rs]
        axes[0].plot(d, [100 * r["policy"]["success_rate"] for r in rs], "o-", label=kind)
        axes[1].plot(d, [r["policy"]["jerk_mean"] for r in rs], "o-", label=kind)
    axes[0].set(xlabel="inference delay d (steps at 50 Hz)", ylabel="success rate (%)", ylim=(-2, 102))
    axes[1].set(xlabel="inference delay d (steps at 50 Hz)", ylabel="mean action jerk", yscale="log")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args: Args) -> dict:
    if args.tier not in TIERS:
        raise SystemExit(f"--tier {args.tier!r}: use one of {sorted(TIERS)}")
    tier = TIERS[args.tier]
    config = args.config or tier.config
    train_config = _config.get_config_or_exit(config)
    data = train_config.data
    repo_id = args.repo_id or data.repo_id
    privileged = data.env_state_dim > 0  # the state carries the simulator's cube pose
    if args.rtc and "rtc" in args.rtc_executors and getattr(data, "env_state_target_dim", 0):
        raise SystemExit(
            f"--rtc: {config} is trained with the cube pose as extra action dims, which a served policy cannot take "
            "back as RTC prev_actions; pass --rtc-executors sync naive ensemble"
        )
    render = ["--image-height", str(tier.render[0]), "--image-width", str(tier.render[1])]
    py = sys.executable
    env = dict(os.environ, HF_LEROBOT_HOME=str(args.datasets_dir), PYTHONUNBUFFERED="1")
    env.setdefault("JAX_PLATFORMS", "cpu")
    out = args.out_dir / args.tier
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.time()
    num_demos = 2 if args.smoke else args.num_demos or tier.num_demos
    info = args.datasets_dir / repo_id / "meta" / "info.json"
    if info.exists():
        have = json.loads(info.read_text())["total_episodes"]
        if have != num_demos:
            raise SystemExit(
                f"{info.parent.parent} holds {have} episodes, this run asks for {num_demos} (--num-demos): pass "
                f"--num-demos {have} to use it, or move it away (or --datasets-dir elsewhere) to generate {num_demos}"
            )
    else:
        start = time.time()
        # The smoke run records 60-step episodes: too short to finish the task, kept anyway (pipeline only).
        smoke_flags = ["--episode-len", "60", "--keep-failures", "--no-require-hold"] if args.smoke else []
        workers = 1 if args.smoke else args.generate_workers
        generate_sharded(repo_id, num_demos, workers, args.datasets_dir, env, smoke_flags, tier.render)
        timings["generate"] = time.time() - start
    timings["norm_stats"] = _run(
        "norm stats",
        [py, "scripts/compute_norm_stats.py", "--config-name", config, "--assets-base-dir", args.assets_base_dir],
        env,
    )
    ckpt_root = args.checkpoint_base_dir / config / args.exp_name
    train = [py, "scripts/train.py", config, f"--exp-name={args.exp_name}"]
    train += [f"--checkpoint-base-dir={args.checkpoint_base_dir}", f"--assets-base-dir={args.assets_base_dir}"]
    steps = 4 if args.smoke else args.train_steps
    if steps is not None:
        train.append(f"--num-train-steps={steps}")
        schedule = train_config.lr_schedule
        stretch = getattr(schedule, "decay_steps", None) == train_config.num_train_steps
        if stretch and steps > getattr(schedule, "warmup_steps", 0):  # not the smoke run's 4 steps
            train.append(f"--lr-schedule.decay-steps={steps}")  # still one cosine schedule over the whole run
    if args.save_interval or args.smoke:
        train.append(f"--save-interval={2 if args.smoke else args.save_interval}")
        train.append(f"--keep-period={2 if args.smoke else args.save_interval}")
    if args.batch_size or args.smoke:
        train.append(f"--batch-size={4 if args.smoke else args.batch_size}")
    if args.smoke:
        train.append("--log-interval=1")
    done = ckpt_root.exists() and steps is not None and (ckpt_root / str(steps)).exists()
    if args.retrain or not done:
        train.append("--overwrite" if args.retrain or not ckpt_root.exists() else "--resume")
        timings["train"] = _run("train", train, env)
    ckpts = sorted(int(p.name) for p in ckpt_root.iterdir() if p.name.isdigit())
    curve_eps, final_eps = (2, 2) if args.smoke else (args.curve_episodes, args.final_episodes)
    extra = [*render, *(["--max-episode-steps", "60", "--no-videos"] if args.smoke else [])]
    points = []
    for i, step in enumerate(ckpts):
        final = i == len(ckpts) - 1
        with PolicyServer(config, ckpt_root / str(step), env, out / "logs" / f"serve_{step}.log") as server:
            summary = _evaluate(
                server,
                out / f"eval_step{step}",
                env,
                episodes=final_eps if final else curve_eps,
                privileged=privileged,
                extra=extra if final else [*extra, "--no-videos"],
            )
            points.append({"step": step, **{k: summary[k] for k in ("policy", "expert") if k in summary}})
            if final:
                points[-1]["executors"] = {
                    kind: _evaluate(
                        server,
                        out / f"eval_step{step}_{kind}",
                        env,
                        episodes=final_eps,
                        privileged=privileged,
                        extra=[*extra, "--executor", kind, "--no-videos", "--no-expert"],
                    )["policy"]
                    for kind in args.final_executors
                    if kind != "sync"
                }
            if final and args.rtc and not args.smoke:
                rtc_rows = []
                for kind in args.rtc_executors:
                    for d in args.rtc_delays:
                        s = _evaluate(
                            server,
                            out / "rtc" / f"{kind}_d{d}",
                            env,
                            episodes=args.rtc_episodes,
                            privileged=privileged,
                            extra=[*render, "--executor", kind, "--delay", str(d), "--no-videos", "--no-expert"],
                        )
                        rtc_rows.append(
                            {"executor": kind, "delay": d, "policy": s["policy"], "episodes": s["episodes"]}
                        )
                (out / "rtc.json").write_text(json.dumps(rtc_rows, indent=2))
                plot_rtc(rtc_rows, out / "rtc.png")
                (out / "rtc.md").write_text("\n".join(rtc_table(rtc_rows)) + "\n")
    timings["total"] = time.time() - t0
    plot_curve(points, out / "curve.png", f"{config} ({args.tier}{', PRIVILEGED state' if privileged else ''})")
    lines = [
        f"## {config} — tier: {args.tier}{' (PRIVILEGED: the state carries the simulator cube pose)' if privileged else ''}",
        "",
        "| checkpoint step | policy success [95% CI] | mean max reward | episode time (s) | scripted expert |",
        "|---|---|---|---|---|",
    ]
    for p in points:
        s = p["policy"]
        lines.append(
            f"| {p['step']} | {_pct(s)} | {s['mean_max_reward']:.2f} | {s['mean_episode_time_s']:.2f} | "
            f"{_pct(p['expert']) if 'expert' in p else '-'} |"
        )
        for kind, s in p.get("executors", {}).items():
            lines.append(
                f"| {p['step']}, `{kind}` executor | {_pct(s)} | {s['mean_max_reward']:.2f} | "
                f"{s['mean_episode_time_s']:.2f} | - |"
            )
    lines.append("")
    lines.append("Stage timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"config": config, "points": points, "timings": timings}, indent=2))
    print("\n" + "\n".join(lines))
    print(f"\n[sim-benchmark] results in {out}")
    return {"points": points, "timings": timings}


if __name__ == "__main__":
    main(tyro.cli(Args))
