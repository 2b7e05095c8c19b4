"""Recording at the control rate: `collect --sim` (Piper 30 fps, Flexiv 20 fps, two cameras) measured from outside
the loop, so the numbers mean the same before and after a change to the recorder.

    .venv/bin/python bench/bench_recording.py                         # both arms, 2 episodes x 5 s, 480x640
    .venv/bin/python bench/bench_recording.py --robots piper --height 240 --width 320
    .venv/bin/python bench/bench_recording.py --robots flexiv --format raw
    .venv/bin/python bench/bench_recording.py --extra="--keep-off-rate"   # any extra collect flag

Each arm runs in a fresh child process (`python -m robot_<arm>.collect --sim`, as `make collect-<arm> SIM=1`),
with the datasets in a temporary HF_LEROBOT_HOME. Inside the child the loop is timed by wrapping, not by the code
under test: a step starts when the cameras are grabbed (once per step); the loop work of a step is the time to
the next step's grab minus the time spent in `time.sleep` (the wait for the next period), split into the camera
grab, `recorder.add_frame` and the rest (leader, state, command, keys, status line). Per episode: achieved rate
= (steps - 1) / (last grab - first grab), steps whose work exceeded the period, the loop's own count of late
steps (a step is late when it ends after its deadline: its work plus how late the previous wait woke up), the
wake-up lateness of the waits (`time.sleep` overshoot = the OS did not run the process in time: other load),
whether the episode was kept, the time to save it after the loop, and the CPU the process used in the loop.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import tyro

FPS = {"piper": 30, "flexiv": 20}


@dataclasses.dataclass
class Args:
    robots: tuple[str, ...] = ("piper", "flexiv")
    episodes: int = 2
    seconds: float = 5.0
    """Episode length (steps = seconds x fps)."""
    height: int = 480
    width: int = 640
    format: str = "lerobot"
    """lerobot or raw (the .npz recorder of the Flexiv robot PC)."""
    extra: str = ""
    """Extra flags for the collect command (split on spaces)."""
    label: str = ""
    """Row label in the table (e.g. before / after)."""
    json_out: pathlib.Path | None = None
    """Append one JSON line per arm here."""
    codec_costs: bool = True
    """First print the CPU time per frame of each writer's per-frame work (PNG, h264 encode, stats) on the
    simulated camera's frames, measured alone in this process."""
    switch_interval_ms: float = 0.0
    """Experiment: sys.setswitchinterval in the collect process (0 = Python's default, 5 ms)."""
    child: str = ""
    """(internal) run one arm in this process and print its JSON."""


class _TimedTime:
    """Stands in for the `time` module inside robot_common.collect: records every sleep (the wait)."""

    def __init__(self, log):
        self._log = log

    def __getattr__(self, name):
        return getattr(time, name)

    def sleep(self, s):
        t0 = time.monotonic()
        time.sleep(s)
        self._log.append((t0, time.monotonic() - t0, s))


def _child(args: Args) -> dict:
    import resource

    from robot_common import raw_episodes
    from robot_common import recorder as recorder_mod
    import robot_common.cli as cli
    import robot_common.collect as collect

    if args.switch_interval_ms:
        sys.setswitchinterval(args.switch_interval_ms / 1e3)
    grabs, sleeps, adds, saves, marks, cpu = [], [], [], [], [], []
    orig_grab = collect.grab

    def grab(cams, **kw):
        t0 = time.monotonic()
        if not marks or marks[-1][1] is not None:  # first step of an episode
            marks.append([len(grabs), None])
            ru = resource.getrusage(resource.RUSAGE_SELF)
            cpu.append([time.monotonic(), ru.ru_utime + ru.ru_stime, None])
        out = orig_grab(cams, **kw)
        grabs.append((t0, time.monotonic() - t0))
        return out

    collect.grab = grab
    collect.time = _TimedTime(sleeps)

    def wrap_add(cls):
        orig = cls.add_frame

        def add_frame(self, *a, **kw):
            t0 = time.monotonic()
            out = orig(self, *a, **kw)
            adds.append((t0, time.monotonic() - t0))
            return out

        cls.add_frame = add_frame

    def wrap_end(cls, name):
        orig = getattr(cls, name)

        def end(self, *a, **kw):
            if marks and marks[-1][1] is None:
                marks[-1][1] = len(grabs)
                ru = resource.getrusage(resource.RUSAGE_SELF)
                cpu[-1][1:] = [ru.ru_utime + ru.ru_stime - cpu[-1][1], time.monotonic() - cpu[-1][0]]
            t0 = time.monotonic()
            out = orig(self, *a, **kw)
            if name == "save_episode":
                saves.append(time.monotonic() - t0)
            return out

        setattr(cls, name, end)

    for cls in (recorder_mod.EpisodeRecorder, raw_episodes.RawEpisodeRecorder):
        wrap_add(cls)
        wrap_end(cls, "save_episode")
        wrap_end(cls, "discard_episode")
    stats_box = []
    orig_record = cli.record_episodes
    cli.record_episodes = lambda *a, **kw: stats_box.append(orig_record(*a, **kw)) or stats_box[-1]

    arm = args.child
    fps = FPS[arm]
    steps = round(args.seconds * fps)
    if arm == "piper":
        from robot_piper import collect as arm_collect
    else:
        from robot_flexiv import collect as arm_collect
    argv = [
        "--sim", "--overwrite", "--repo-id", f"bench_{arm}", "--num-episodes", str(args.episodes),
        "--episode-steps", str(steps), "--fps", str(fps), "--format", args.format,
        "--cameras.height", str(args.height), "--cameras.width", str(args.width), *args.extra.split(),
    ]  # fmt: skip
    t0 = time.monotonic()
    arm_collect.main(tyro.cli(arm_collect.Args, args=argv))
    total = time.monotonic() - t0
    stats = stats_box[-1]

    period = 1.0 / fps
    episodes = []
    starts = np.array([g[0] for g in grabs])
    grab_dur = np.array([g[1] for g in grabs])
    add_t = np.array([a[0] for a in adds])
    add_d = np.array([a[1] for a in adds])
    sl_t = np.array([s[0] for s in sleeps]) if sleeps else np.zeros(0)
    sl_d = np.array([s[1] for s in sleeps]) if sleeps else np.zeros(0)
    sl_late = np.array([s[1] - s[2] for s in sleeps]) * 1e3 if sleeps else np.zeros(0)  # wake-up latency, ms
    for i, (lo, hi) in enumerate(marks):
        hi = hi if hi is not None else len(grabs)
        s = starts[lo:hi]
        if len(s) < 3:
            continue
        work, add_in, grab_in = [], [], []
        for k in range(len(s) - 1):
            w = (s[k] <= sl_t) & (sl_t < s[k + 1])
            a = (s[k] <= add_t) & (add_t < s[k + 1])
            work.append(s[k + 1] - s[k] - sl_d[w].sum())
            add_in.append(add_d[a].sum())
            grab_in.append(grab_dur[lo + k])
        work, add_in, grab_in = (np.array(x) * 1e3 for x in (work, add_in, grab_in))
        in_ep = (s[0] <= sl_t) & (sl_t < s[-1])
        wake = sl_late[in_ep] if in_ep.any() else np.zeros(1)
        att = stats.attempts[i] if i < len(stats.attempts) else None
        episodes.append(
            {
                "steps": len(s),
                "achieved_fps": (len(s) - 1) / (s[-1] - s[0]),
                "work_ms_p50": float(np.median(work)),
                "work_ms_p90": float(np.percentile(work, 90)),
                "work_ms_max": float(work.max()),
                "grab_ms_p50": float(np.median(grab_in)),
                "add_frame_ms_p50": float(np.median(add_in)),
                "add_frame_ms_max": float(add_in.max()),
                "rest_ms_p50": float(np.median(work - add_in - grab_in)),
                "wake_late_ms_p50": float(np.median(wake)),
                "wake_late_ms_p99": float(np.percentile(wake, 99)),
                "wake_late_ms_max": float(wake.max()),
                "overrun_steps": int((work > period * 1e3).sum()),
                "late_steps": int(att.overruns) if att else None,
                "save_s": saves[i] if i < len(saves) else None,
                "loop_cores": cpu[i][1] / cpu[i][2] if cpu[i][2] else None,
                "kept": bool(att.kept) if att else None,
            }
        )
    return {
        "robot": arm,
        "fps": fps,
        "size": f"{args.height}x{args.width}",
        "format": args.format,
        "extra": args.extra,
        "label": args.label,
        "total_s": total,
        "episodes": episodes,
        "loadavg_1m": os.getloadavg()[0],
    }


def _row(r: dict) -> str:
    eps = r["episodes"]
    steps = sum(e["steps"] for e in eps)

    def m(key, fmt="{:.1f}"):
        vals = [e[key] for e in eps if e[key] is not None]
        return "/".join(fmt.format(v) for v in vals) if vals else "-"

    over = sum(e["overrun_steps"] for e in eps)
    return (
        f"| {r['label'] or '-'} | {r['robot']} {r['fps']} fps {r['size']} {r['format']} {r['extra']} | "
        f"{m('achieved_fps')} | {m('work_ms_p50')} | {m('work_ms_p90')} | {m('grab_ms_p50')} | "
        f"{m('add_frame_ms_p50', '{:.2f}')} | {m('rest_ms_p50')} | {m('wake_late_ms_p99')} | {m('wake_late_ms_max')} | "
        f"{over}/{steps - len(eps)} | "
        f"{m('late_steps', '{}')} | {sum(bool(e['kept']) for e in eps)}/{len(eps)} | {m('save_s')} | "
        f"{m('loop_cores', '{:.2f}')} | {r['loadavg_1m']:.1f} |"
    )


HEADER = (
    "| run | arm, rate, cameras, format | achieved fps (per episode) | loop work p50 ms | p90 ms | grab ms | "
    "add_frame ms | rest ms | wake-up late p99 ms | max ms | work > period | late steps (loop's count) | kept | "
    "save after loop s | loop CPU cores | load 1 min |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def codec_costs(height: int, width: int, n: int = 40) -> list[tuple[str, float, float]]:
    """(what, CPU ms per frame, wall ms per frame) for one camera's frame at height x width: LeRobot's PNG write
    (compress level 1, the `threads`/`sync` writers), and the streaming writer's parts: RGB -> video frame, h264
    encode with LeRobot's options (g=2, crf=30, libx264 default preset), per-frame image stats."""
    from fractions import Fraction
    import io

    import av
    from lerobot.datasets.compute_stats import RunningQuantileStats
    from lerobot.datasets.compute_stats import auto_downsample_height_width
    from lerobot.datasets.image_writer import write_image
    from lerobot.datasets.video_utils import _get_codec_options

    from robot_common.interface import SimCamera

    class _Arm:
        def __init__(self):
            self.t = 0.0

        def state(self):
            self.t += 0.05
            return np.array([np.sin(self.t), np.cos(self.t)])

    cam = SimCamera(_Arm(), (height, width), seed=1)
    frames = [cam.read() for _ in range(n)]
    stats = RunningQuantileStats()
    out = av.open(io.BytesIO(), "w", format="mp4")
    stream = out.add_stream("h264", 30, options=_get_codec_options("h264", 2, 30, None))
    stream.pix_fmt, stream.width, stream.height, stream.time_base = "yuv420p", width, height, Fraction(1, 30)
    vframes = []

    png_dir = tempfile.TemporaryDirectory()

    def png(f):
        write_image(f, pathlib.Path(png_dir.name) / "frame.png", compress_level=1)

    def to_video_frame(f):
        vframes.append(av.VideoFrame.from_image(__import__("PIL.Image").Image.fromarray(f)))

    def encode(f):
        vf = vframes[len(vframes_done)]
        vf.pts = len(vframes_done)
        vframes_done.append(1)
        for packet in stream.encode(vf):
            out.mux(packet)

    def image_stats(f):
        small = auto_downsample_height_width(f.transpose(2, 0, 1))
        stats.update(small.transpose(1, 2, 0).reshape(-1, 3))

    vframes_done: list = []
    rows = []
    for name, fn in [("PNG write (compress 1)", png), ("RGB -> video frame", to_video_frame),
                     ("h264 encode", encode), ("image stats", image_stats)]:  # fmt: skip
        c0, w0 = time.process_time(), time.perf_counter()
        for f in frames:
            fn(f)
        rows.append((name, 1e3 * (time.process_time() - c0) / n, 1e3 * (time.perf_counter() - w0) / n))
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    png_dir.cleanup()
    return rows


def main(args: Args) -> None:
    if args.child:
        print("BENCH_JSON " + json.dumps(_child(args)), flush=True)
        return
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    if args.codec_costs:
        print(
            f"\n| per-frame work, one {args.height}x{args.width} simulated camera | CPU ms | wall ms |\n|---|---|---|"
        )
        for name, cpu_ms, wall_ms in codec_costs(args.height, args.width):
            print(f"| {name} | {cpu_ms:.1f} | {wall_ms:.1f} |", flush=True)
        print()
    print(HEADER)
    for arm in args.robots:
        with tempfile.TemporaryDirectory(prefix="bench_rec_") as home:
            env = {**os.environ, "HF_LEROBOT_HOME": home}
            cmd = [sys.executable, __file__, "--child", arm, "--episodes", str(args.episodes), "--seconds",
                   str(args.seconds), "--height", str(args.height), "--width", str(args.width), "--format",
                   args.format, f"--extra={args.extra}", f"--label={args.label}",
                   "--switch-interval-ms", str(args.switch_interval_ms)]  # fmt: skip
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")]
            if out.returncode or not lines:
                print(out.stdout[-3000:], out.stderr[-5000:], file=sys.stderr)
                raise SystemExit(f"{arm}: the collect child failed (exit {out.returncode})")
            r = json.loads(lines[-1].removeprefix("BENCH_JSON "))
            print(_row(r), flush=True)
            if args.json_out:
                with open(args.json_out, "a") as f:
                    f.write(json.dumps({**r, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")


if __name__ == "__main__":
    main(tyro.cli(Args))
