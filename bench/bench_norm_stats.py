"""Norm stats: the fast path (parquet columns only) vs the full-item path (every item through LeRobotDataset, video
decoded) on the SAME generated Piper-like LeRobot dataset, side by side in one run. Prints a markdown table.

    .venv/bin/python bench/bench_norm_stats.py                      # 50 episodes x 150 frames, 2 cameras 480x640
    .venv/bin/python bench/bench_norm_stats.py --full-frames 0      # full path over every frame (slow: ~10+ min)

The dataset is written once with LeRobot's own writer (`LeRobotDataset.create` / `add_frame` / `save_episode`, the
lerobot default AV1 codec) into `<cache-dir>/<name>.partial` and renamed into place, so it is reused by later runs
and never half-written. The full path is slow (~10 items/s): by default it runs on a uniform random subset of
`--full-frames` frames (the same subset the fast path is compared on) and its per-frame time is extrapolated.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import time

import numpy as np
import tyro


@dataclasses.dataclass
class Args:
    episodes: int = 50
    length: int = 150
    """Frames per episode (5 s at 30 fps, like a short Piper pick)."""
    height: int = 480
    width: int = 640
    fps: int = 30
    vcodec: str = "libsvtav1"
    """LeRobot's default video codec (what `lerobot-record` writes); `h264` also works."""
    full_frames: int = 1024
    """Frames for the full (video-decoding) path: a uniform random subset; 0 = every frame."""
    batch_size: int = 32
    cache_dir: pathlib.Path = pathlib.Path("/tmp/openpi_bench")
    """HF_LEROBOT_HOME for the generated dataset (kept between runs; not in the repo)."""


def _scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A static textured table: smooth colour blobs + fine grain (so the video is not trivially compressible)."""
    coarse = rng.integers(40, 200, (h // 40 + 1, w // 40 + 1, 3)).astype(np.float32)
    ys, xs = np.linspace(0, coarse.shape[0] - 1, h), np.linspace(0, coarse.shape[1] - 1, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    y1, x1 = np.minimum(y0 + 1, coarse.shape[0] - 1), np.minimum(x0 + 1, coarse.shape[1] - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    img = (
        coarse[y0][:, x0] * (1 - fy) * (1 - fx)
        + coarse[y1][:, x0] * fy * (1 - fx)
        + coarse[y0][:, x1] * (1 - fy) * fx
        + coarse[y1][:, x1] * fy * fx
    )
    img += rng.normal(0, 6, (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def _episode(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth 6-joint trajectory + gripper (7-d state); the action is the state 3 frames ahead."""
    t = np.linspace(0, 1, length + 3)[:, None]
    amp, freq, phase = rng.uniform(0.2, 1.0, 6), rng.uniform(0.5, 2.0, 6), rng.uniform(0, 2 * np.pi, 6)
    joints = amp * np.sin(2 * np.pi * freq * t + phase) + rng.normal(0, 0.002, (length + 3, 6))
    gripper = np.where((t[:, 0] > 0.35) & (t[:, 0] < 0.8), 0.0, 0.07)[:, None]
    traj = np.concatenate([joints, gripper], axis=1).astype(np.float32)
    return traj[:length], traj[3 : length + 3]


def generate(args: Args, name: str) -> pathlib.Path:
    """Writes the dataset with LeRobot's writer into a temp dir and renames it into place (reused if present)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    final = args.cache_dir / name
    if (final / "meta" / "info.json").exists():
        return final
    tmp = args.cache_dir / f"{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    h, w = args.height, args.width
    cam = {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channel"]}
    feats = {
        "observation.images.base": cam,
        "observation.images.wrist": dict(cam),
        "observation.state": {"dtype": "float32", "shape": (7,), "names": None},
        "action": {"dtype": "float32", "shape": (7,), "names": None},
    }
    ds = LeRobotDataset.create(
        name,
        fps=args.fps,
        features=feats,
        root=tmp,
        robot_type="piper",
        use_videos=True,
        vcodec=args.vcodec,
        streaming_encoding=True,
    )
    rng = np.random.default_rng(0)
    start = time.time()
    for ep in range(args.episodes):
        base_bg, wrist_bg = _scene(rng, h, w), _scene(rng, 2 * h, 2 * w)
        states, actions = _episode(rng, args.length)
        cube = rng.integers([h // 3, w // 4], [2 * h // 3, 3 * w // 4])
        for i in range(args.length):
            # the "arm" (a dark bar) follows joints 0/1 in the base view; the wrist view pans over a larger scene
            base = base_bg.copy()
            ay, ax = int(h / 2 + states[i, 1] * h / 4), int(w / 2 + states[i, 0] * w / 4)
            base[max(ay - 20, 0) : ay + 20, max(ax - 60, 0) : ax + 60] = (30, 30, 40)
            base[cube[0] : cube[0] + 30, cube[1] : cube[1] + 30] = (200, 30, 30)
            oy = int(np.clip((states[i, 2] + 1) * h / 2, 0, h))
            ox = int(np.clip((states[i, 3] + 1) * w / 2, 0, w))
            wrist = wrist_bg[oy : oy + h, ox : ox + w]
            ds.add_frame(
                {
                    "observation.images.base": base,
                    "observation.images.wrist": np.ascontiguousarray(wrist),
                    "observation.state": states[i],
                    "action": actions[i],
                    "task": "pick up the red cube",
                }
            )
        ds.save_episode()
        if (ep + 1) % 10 == 0:
            print(f"[bench] generated {ep + 1}/{args.episodes} episodes in {time.time() - start:.0f}s", flush=True)
    ds.finalize()
    os.replace(tmp, final)
    return final


def _max_abs_diff(a: dict, b: dict) -> float:
    return max(
        float(np.max(np.abs(getattr(a[k], f) - getattr(b[k], f)))) for k in a for f in ("mean", "std", "q01", "q99")
    )


def main(args: Args) -> dict:
    name = f"bench_piper_{args.episodes}x{args.length}_{args.height}x{args.width}_{args.vcodec}"
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ["HF_LEROBOT_HOME"] = str(args.cache_dir)
    import lerobot.datasets.lerobot_dataset as ld
    import lerobot.utils.constants as lc

    lc.HF_LEROBOT_HOME = args.cache_dir
    if hasattr(ld, "HF_LEROBOT_HOME"):
        ld.HF_LEROBOT_HOME = args.cache_dir
    t = time.perf_counter()
    root = generate(args, name)
    t_gen = time.perf_counter() - t
    size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6

    from openpi.training import config as _config
    from openpi.training import norm_stats

    base = _config.get_config("pi05_piper_pick_cube")
    cfg = dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, repo_id=name),
        batch_size=args.batch_size,
        num_workers=0,
        assets_base_dir=str(args.cache_dir / "assets"),
    )
    subset = None if args.full_frames <= 0 else args.full_frames
    t = time.perf_counter()
    _, fast_all, n_all = norm_stats.compute(cfg)
    t_fast_all = time.perf_counter() - t
    t = time.perf_counter()
    _, fast_sub, n_sub = norm_stats.compute(cfg, max_frames=subset)
    t_fast_sub = time.perf_counter() - t
    t = time.perf_counter()
    _, full_sub, n_full = norm_stats.compute(cfg, max_frames=subset, slow=True)
    t_full_sub = time.perf_counter() - t
    assert n_full == n_sub
    diff = _max_abs_diff(fast_sub, full_sub)
    per_frame_full = t_full_sub / n_full
    full_all_est = per_frame_full * n_all
    ratio = full_all_est / t_fast_all
    extrapolated = n_full < n_all
    res = dict(
        frames=n_all, gen_s=t_gen, size_mb=size_mb, fast_all=t_fast_all, fast_sub=t_fast_sub, full_sub=t_full_sub,
        n_sub=n_sub, diff=diff, ratio=ratio, full_all_est=full_all_est,
    )  # fmt: skip

    gen_note = "reused from the cache" if t_gen < 5 else f"generated in {t_gen:.0f}s"
    cams = f"2 cameras {args.height}x{args.width} {args.vcodec} @ {args.fps} fps"
    print(
        f"\nDataset: {args.episodes} episodes x {args.length} frames = {n_all} frames used ({cams}, 7-d state/action), "
        f"{size_mb:.0f} MB, {gen_note}. pi05_piper_pick_cube transforms, action horizon "
        f"{cfg.model.action_horizon}, batch {args.batch_size}.\n"
    )
    print("| norm stats path | frames | seconds | frames/s |")
    print("|---|---|---|---|")
    what = "uniform random subset" if extrapolated else "every frame"
    print(
        f"| full items (LeRobotDataset, decodes video), {what} | {n_full} | {t_full_sub:.1f} | {1 / per_frame_full:.1f} |"
    )
    print(f"| fast (parquet columns), same frames | {n_sub} | {t_fast_sub:.2f} | {n_sub / t_fast_sub:.0f} |")
    print(f"| fast (parquet columns), whole dataset | {n_all} | {t_fast_all:.2f} | {n_all / t_fast_all:.0f} |")
    est = " (extrapolated per frame)" if extrapolated else ""
    print(f"| full items, whole dataset{est} | {n_all} | {full_all_est:.0f} | {1 / per_frame_full:.1f} |")
    print(f"| **speed-up, whole dataset** | | **{ratio:.0f}x** | |")
    print(f"\nMax abs difference of mean/std/q01/q99 between the two paths on the same {n_sub} frames: {diff:.3g}")
    return res


if __name__ == "__main__":
    main(tyro.cli(Args))
