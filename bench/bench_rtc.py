"""Real-time chunking benchmark on a toy bimodal trajectory task (CPU), through our real sampler
`openpi.models_pytorch.rtc.sample_actions_rtc`.

For inference delays d in {0..4} (execution horizon s = 8, H = 16, 10 flow steps, beta = 5) it compares
synchronous execution, naive async chunk switching, temporal ensembling (ACT, w_i = exp(-0.01 i)), inference-time RTC
("vjp" and "identity" guidance) and training-time RTC ("prefix", a second policy trained with simulated delay):
boundary jump |a_t - a_{t-1}| at chunk swaps, jerk at swaps, mode-switch rate, collisions and progress.
It also times one chunk (batch 1) for plain sampling vs each RTC method on the toy policy and on the tiny pi0.5
(PyTorch), and plots executed trajectories around a swap.

    .venv/bin/python bench/bench_rtc.py            # ~5-10 min on 2 cores; writes bench/results/rtc.{md,png}
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
import torch
import tyro

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import rtc_toy as toy

from openpi.models_pytorch import rtc as rtc_t

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
METHODS = ("sync", "naive", "te", "vjp", "identity", "prefix")
LABELS = {
    "sync": "synchronous (stop during inference)",
    "naive": "naive async",
    "te": "temporal ensembling (ACT, m=0.01)",
    "vjp": "RTC vjp",
    "identity": "RTC identity (J = I)",
    "prefix": "training-time RTC (prefix)",
}


@dataclasses.dataclass
class Args:
    seeds: int = 500  # rollouts per (method, delay) cell
    train_steps: int = 6000
    demos: int = 3000
    rtc_max_delay: int = 5  # training-time RTC: d ~ p(d) ∝ exp(D-1-d), d in {0..D-1}
    execute_horizon: int = 8
    s_sweep: tuple[int, ...] = (2, 4, 8, 12)  # execution horizons compared at d = 2
    beta_sweep: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0)  # max guidance weights compared at d = 2
    timing_reps: int = 200
    pi05_timing_reps: int = 25
    skip_pi05: bool = False
    cache_dir: str = os.path.join(tempfile.gettempdir(), "openpi_bench_rtc")  # trained toy policies
    out_dir: str = str(RESULTS)


def _atomic_save(obj, path: pathlib.Path):
    tmp = path.with_suffix(path.suffix + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def get_policies(args: Args):
    """Train (or load from the cache) the plain and the training-time-RTC toy policies on the same demos."""
    states, chunks, norm = toy.make_dataset(args.demos)
    key = hashlib.sha256(
        pathlib.Path(toy.__file__).read_bytes() + f"{args.demos},{args.train_steps},{args.rtc_max_delay}".encode()
    ).hexdigest()[:12]
    cache = pathlib.Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    models, train_s = {}, {}
    for name, dmax in (("plain", 0), ("prefix", args.rtc_max_delay)):
        path = cache / f"{name}_{key}.pt"
        if path.exists():
            m = toy.ToyFlowPolicy(rtc_max_delay=dmax)
            m.load_state_dict(torch.load(path))
            models[name], train_s[name] = m.eval(), None
            continue
        t0 = time.perf_counter()
        models[name] = toy.train_policy(states, chunks, steps=args.train_steps, rtc_max_delay=dmax, batch=256)
        train_s[name] = time.perf_counter() - t0
        _atomic_save(models[name].state_dict(), path)
    return models, norm, train_s


def run_grid(models, norm, args: Args, delays=(0, 1, 2, 3, 4)):
    rows = {}
    for d in delays:
        for method in METHODS:
            model = models["prefix" if method == "prefix" else "plain"]
            r = toy.rollout(model, norm, method, d, n=args.seeds, seed=d, s=args.execute_horizon)
            rows[(method, d)] = toy.metrics(r)
    return rows


def run_s_sweep(models, norm, args: Args, d: int = 2):
    rows = {}
    for s in args.s_sweep:
        for method in ("naive", "vjp", "identity", "prefix"):
            model = models["prefix" if method == "prefix" else "plain"]
            rows[(method, s)] = toy.metrics(toy.rollout(model, norm, method, d, n=args.seeds, seed=d, s=s))
    return rows


def run_beta_sweep(models, norm, args: Args, d: int = 2):
    return {
        (method, beta): toy.metrics(
            toy.rollout(models["plain"], norm, method, d, n=args.seeds, seed=d, s=args.execute_horizon, beta=beta)
        )
        for beta in args.beta_sweep
        for method in ("vjp", "identity")
    }


def _median_ms(fns: dict, reps: int) -> dict:
    """Round-robin timing (so load from other processes hits every method alike); median per method in ms."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: 1000 * float(np.median(v)) for k, v in times.items()}


def time_methods(model, prefix_model, obs, prev, d, reps, plain_fn):
    def rtc(m, method):
        return lambda: rtc_t.sample_actions_rtc(m, "cpu", obs, prev_chunk=prev, inference_delay=d, method=method)

    return _median_ms(
        {
            "plain": plain_fn,
            "vjp": rtc(model, "vjp"),
            "identity": rtc(model, "identity"),
            "prefix": rtc(prefix_model, "prefix"),
        },
        reps,
    )


def time_toy(models, norm, args: Args):
    k = toy.H - args.execute_horizon
    obs = toy.ToyObservation(norm.state(np.array([[0.1, 0.0]]), np.array([[0.0105, 0.0]])))
    prev = torch.randn(1, k, toy.ACTION_DIM)
    m = models["plain"]
    return time_methods(m, models["prefix"], obs, prev, 2, args.timing_reps, lambda: m.sample_actions("cpu", obs))


def time_pi05(args: Args):
    """Tiny pi0.5 (dummy Gemma, tiny SigLIP, random weights), PyTorch eager: H = 50, k = 25, d = 4."""
    import jax

    from openpi.models import pi0_config
    from openpi.models.pi0_config import TINY
    from openpi.models_pytorch.pi0_pytorch import PI0Pytorch

    cfg = pi0_config.Pi0Config(pi05=True, action_horizon=50, **{**TINY, "max_token_len": 64})
    torch.manual_seed(0)
    model = PI0Pytorch(cfg).eval()
    obs = jax.tree.map(lambda x: torch.as_tensor(np.asarray(x)), cfg.fake_obs(1))
    prev = torch.randn(1, 25, cfg.action_dim) * 0.5
    with torch.no_grad():
        return time_methods(model, model, obs, prev, 4, args.pi05_timing_reps, lambda: model.sample_actions("cpu", obs))


# ------------------------------------------------------------------------------------------------------------ plot
def swap_example(models, norm, d: int, s: int, n: int = 256, seed: int = 123):
    """Advance n naive rollouts to a swap where the old chunk has committed to a side while the robot has not yet
    left the centre line; sample the new chunk with every method from that state (same noise) and pick an example
    where naive flips side."""
    k = toy.H - s
    p, v = toy._start(n, seed)
    hist_p, hist_a = [p.copy()], []
    noise = toy._Noise(n, seed)
    m = models["plain"]

    def obs():
        return toy.ToyObservation(norm.state(p, v))

    cur = norm.to_robot(m.sample_actions("cpu", obs(), noise=noise()))
    for _ in range(toy.EP_STEPS // s):
        z = noise()
        news = {"naive": norm.to_robot(m.sample_actions("cpu", obs(), noise=z))}
        for method in ("vjp", "identity", "prefix"):
            mm = models["prefix" if method == "prefix" else "plain"]
            out = rtc_t.sample_actions_rtc(
                mm, "cpu", obs(), prev_chunk=norm.to_model(cur[:, :k]), inference_delay=d, method=method, noise=z
            )
            news[method] = norm.to_robot(out)
        y_old = toy._plan_y(p, cur[:, :k])[:, d:]
        y_new = toy._plan_y(p, news["naive"][:, :k])[:, d:]
        y_rtc = toy._plan_y(p, news["vjp"][:, :k])[:, d:]
        thr = toy.SWERVE_THRESHOLD
        flip = ((y_old * y_new < 0) & (np.abs(y_new) > thr) & (np.abs(y_old) > thr)).any(1)
        keep = ((y_old * y_rtc > 0) | (np.abs(y_old) <= thr)).all(1)
        cand = np.flatnonzero(flip & keep & (np.abs(p[:, 1]) < 0.03))
        if cand.size and hist_a:  # skip the first cycle so the plot shows some executed history
            i = int(cand[0])
            return {
                "hist_p": np.stack(hist_p, 1)[i],
                "hist_a": np.stack(hist_a, 1)[i] if hist_a else np.zeros((0, 2)),
                "p": p[i],
                "old": cur[i],
                "news": {key: val[i] for key, val in news.items()},
                "d": d,
                "s": s,
            }
        seq = np.concatenate([cur[:, :d], news["naive"][:, d:s]], 1)
        for j in range(s):
            p, v = p + seq[:, j], seq[:, j]
            hist_p.append(p.copy())
            hist_a.append(seq[:, j])
        cur = news["naive"][:, s:]
    return None


def plot(models, norm, args: Args, path: pathlib.Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d, s = 2, args.execute_horizon
    ex = swap_example(models, norm, d, s)
    colors = {"naive": "tab:red", "vjp": "tab:blue", "identity": "tab:cyan", "prefix": "tab:purple", "te": "tab:green"}
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5))
    (ax_xy, ax_v), (ax_n, ax_r) = axes
    if ex is not None:
        hp = ex["hist_p"][-12:]
        ax_xy.plot(hp[:, 0], hp[:, 1], "k.-", lw=1.5, label="executed so far")
        old_path = ex["p"] + np.concatenate([np.zeros((1, 2)), np.cumsum(ex["old"], 0)])
        ax_xy.plot(old_path[:, 0], old_path[:, 1], "--", color="gray", label="old chunk (remaining plan)")
        p_d = ex["p"] + ex["old"][:d].sum(0)
        ax_xy.plot(old_path[: d + 1, 0], old_path[: d + 1, 1], "k.-", lw=2.5)
        n_hist = len(ex["hist_a"][-12:])
        ts = np.arange(-n_hist, 0)
        ax_v.plot(ts, ex["hist_a"][-12:, 1], "k.-", label="executed")
        ax_v.plot(np.arange(d), ex["old"][:d, 1], "k.-", lw=2.5)
        ax_v.plot(np.arange(ex["old"].shape[0]), ex["old"][:, 1], "--", color="gray", label="old chunk")
        for key in ("naive", "vjp", "identity", "prefix"):
            new = ex["news"][key]
            path_new = p_d + np.cumsum(new[d:s], 0)
            ax_xy.plot(
                np.r_[p_d[0], path_new[:, 0]], np.r_[p_d[1], path_new[:, 1]], ".-", color=colors[key], label=LABELS[key]
            )
            ax_v.plot(np.arange(d - 1, s), np.r_[ex["old"][d - 1, 1], new[d:s, 1]], ".-", color=colors[key])
        ax_v.axvline(d - 0.5, color="k", lw=0.5)
        ax_v.set(
            xlabel="control step (0 = inference starts)", ylabel="action y (velocity)", title="action y at the swap"
        )
        pts = np.concatenate([hp, old_path, p_d[None] + np.cumsum(ex["news"]["naive"][d:s], 0)])
        lo, hi = pts.min(0) - 0.02, pts.max(0) + 0.02
        ax_xy.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
        ax_xy.set(title=f"one swap, d={d}, s={s}: executed old[:d] then new[d:s]", xlabel="x", ylabel="y")
        ax_xy.legend(fontsize=7, loc="best")
    for ax, method in ((ax_n, "naive"), (ax_r, "vjp")):
        r = toy.rollout(models["plain"], norm, method, d, n=40, seed=99, s=s)
        te = toy.rollout(models["plain"], norm, "te", d, n=40, seed=99, s=s) if method == "naive" else None
        for q in r.pos:
            ax.plot(q[:, 0], q[:, 1], color=colors[method], lw=0.6, alpha=0.7)
        if te is not None:
            for q in te.pos:
                ax.plot(q[:, 0], q[:, 1], color=colors["te"], lw=0.6, alpha=0.5)
        title = f"40 rollouts, d={d}: {LABELS[method]}" + (" (red), temporal ensembling (green)" if te else "")
        ax.set(title=title, xlabel="x", ylabel="y")
    for ax in (ax_xy, ax_n, ax_r):
        for c in toy.OBSTACLES:
            ax.add_patch(plt.Circle(c, toy.RADIUS, color="k", alpha=0.3))
        ax.set_aspect("equal", adjustable="box" if ax is ax_xy else "datalim")
    fig.tight_layout()
    tmp = path.with_suffix(".partial.png")
    fig.savefig(tmp, dpi=70)
    os.replace(tmp, path)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------- report
def markdown(rows, rows_s, rows_beta, toy_ms, pi05_ms, train_s, equal_diff, args: Args) -> str:
    out = [
        "## Real-time chunking (`bench/bench_rtc.py`), toy bimodal trajectory task",
        "",
        "Date 2026-11-25. Machine: 2-core CPU, 24 GB, no GPU (shared with other jobs; torch uses 1 thread).",
        "",
        "Task: a 2-D point moves right and passes two round obstacles over or under (each side p = 1/2 in the demos,"
        " random swerve timing, smooth velocity wobble); the policy observes the position [x, y]; action = next displacement"
        " (a velocity command), so |a_t - a_{t-1}| is the velocity jump the robot sees. MLP flow policy"
        f" (H = 16, 10 Euler steps, openpi time convention), trained on {args.demos} demos for {args.train_steps}"
        f" steps; a second copy trained with training-time RTC (D = {args.rtc_max_delay}). Every RTC number runs"
        " `openpi.models_pytorch.rtc.sample_actions_rtc` (beta = 5, exp soft mask). Delay simulated as in Kinetix"
        f" eval_flow: per cycle execute old[:d] then new[d:s], s = {args.execute_horizon}; {args.seeds} rollouts of"
        f" {toy.EP_STEPS} steps per cell, the same noise for every method.",
        "",
        "Columns: *max jump* = mean over rollouts of the largest |a_t - a_{t-1}| at a chunk swap (for sync: at the"
        " stop and the restart; for temporal ensembling: at any step); *within* = the same max over the other steps"
        " (the demos' own largest velocity change is ~0.007); *jerk* = mean of the largest |a_t - 2a_{t-1} + a_{t-2}|"
        " touching a swap; *switch* = fraction of swaps whose old overlap (|y| > 0.05) commits to a side where the new"
        " chunk's overlap commits to the other; *collide* = rollouts touching an obstacle; *x(T)* = progress after"
        f" {toy.EP_STEPS} steps (synchronous execution loses d steps per chunk).",
        "",
        "| d | method | max jump | mean jump | within | jerk | switch | collide | x(T) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (method, d), m in rows.items():
        sw = "n/a" if np.isnan(m["switch_rate"]) else f"{m['switch_rate']:.3f}"
        out.append(
            f"| {d} | {LABELS[method]} | {m['jump_max']:.4f} | {m['jump_mean']:.4f} | {m['within_max']:.4f} |"
            f" {m['jerk_swap']:.4f} | {sw} | {m['collision']:.3f} | {m['progress']:.3f} |"
        )
    naive2 = rows[("naive", 2)]["jump_max"]
    out += ["", "Boundary-jump reduction vs naive async (max jump, naive / method):", ""]
    out += ["| d | RTC vjp | RTC identity | training-time prefix | temporal ensembling |", "|---|---|---|---|---|"]
    for d in sorted({d for _, d in rows}):
        nv = rows[("naive", d)]["jump_max"]
        ratios = [f"{nv / rows[(m, d)]['jump_max']:.2f}x" for m in ("vjp", "identity", "prefix", "te")]
        out.append(f"| {d} | " + " | ".join(ratios) + " |")
    out += [
        "",
        "Execution-horizon sweep at d = 2 (max jump / mode-switch rate / collisions):",
        "",
        "| s | naive async | RTC vjp | RTC identity | training-time prefix |",
        "|---|---|---|---|---|",
    ]
    for s in args.s_sweep:
        cells = [
            f"{rows_s[(m, s)]['jump_max']:.4f} / {rows_s[(m, s)]['switch_rate']:.3f} / {rows_s[(m, s)]['collision']:.3f}"
            for m in ("naive", "vjp", "identity", "prefix")
        ]
        out.append(f"| {s} | " + " | ".join(cells) + " |")
    out += [
        "",
        "Guidance-weight clip beta at d = 2, s = 8 (max jump / mode-switch rate / collisions; the paper uses beta = 5):",
        "",
        "| beta | RTC vjp | RTC identity |",
        "|---|---|---|",
    ]
    for beta in args.beta_sweep:
        cells = [
            f"{rows_beta[(m, beta)]['jump_max']:.4f} / {rows_beta[(m, beta)]['switch_rate']:.3f} /"
            f" {rows_beta[(m, beta)]['collision']:.3f}"
            for m in ("vjp", "identity")
        ]
        out.append(f"| {beta:g} | " + " | ".join(cells) + " |")
    out += [
        "",
        "Cost of one chunk (batch 1, median ms, methods timed round-robin in one run; RTC with d = 2, k = 8 for the"
        " toy and d = 4, k = 25 for pi0.5):",
        "",
        "| model | plain | RTC vjp | RTC identity | prefix | vjp / plain | identity / plain | prefix / plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, ms in (("toy MLP policy (H=16)", toy_ms), ("tiny pi0.5, PyTorch eager (H=50, random weights)", pi05_ms)):
        if ms is None:
            continue
        out.append(
            f"| {name} | {ms['plain']:.2f} | {ms['vjp']:.2f} | {ms['identity']:.2f} | {ms['prefix']:.2f} |"
            f" {ms['vjp'] / ms['plain']:.2f}x | {ms['identity'] / ms['plain']:.2f}x | {ms['prefix'] / ms['plain']:.2f}x |"
        )
    vjp_ratio = naive2 / rows[("vjp", 2)]["jump_max"]
    id_ratio = naive2 / rows[("identity", 2)]["jump_max"]
    cost_ms = pi05_ms if pi05_ms is not None else toy_ms
    cost = cost_ms["vjp"] / cost_ms["plain"]
    cost_name = "tiny pi0.5" if pi05_ms is not None else "toy MLP"
    toy_cost = toy_ms["vjp"] / toy_ms["plain"]
    out += [
        "",
        f"Targets: max boundary jump at d = 2 cut >= 3x vs naive: RTC vjp {vjp_ratio:.2f}x"
        f" ({'met' if vjp_ratio >= 3 else 'NOT met'}), identity {id_ratio:.2f}x"
        f" ({'met' if id_ratio >= 3 else 'NOT met'}), prefix {naive2 / rows[('prefix', 2)]['jump_max']:.2f}x."
        f" RTC cost <= 1.5x plain: vjp on the {cost_name} {cost:.2f}x ({'met' if cost <= 1.5 else 'NOT met'});"
        f" on the toy MLP {toy_cost:.2f}x ({'met' if toy_cost <= 1.5 else 'NOT met'}, autograd overhead dominates);"
        f" identity {cost_ms['identity'] / cost_ms['plain']:.2f}x and prefix {cost_ms['prefix'] / cost_ms['plain']:.2f}x.",
        "",
        f"With no previous chunk (d = 0) every method returns plain sampling exactly (max |diff| = {equal_diff:.1e}).",
        "",
        "Findings:",
        *findings(rows, toy_ms, pi05_ms),
    ]
    if any(v is not None for v in train_s.values()):
        out.append("Training time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in train_s.items() if v is not None) + ".")
    out += ["", "![executed trajectories around a swap](rtc_swap.png)", ""]
    return "\n".join(out)


def findings(rows, toy_ms, pi05_ms) -> list[str]:
    def r(method, d, key):
        return rows[(method, d)][key]

    dmax = max(d for _, d in rows)
    out = [
        f"- RTC vjp / identity make a swap as smooth as a step inside a chunk (d = 2: max jump {r('vjp', 2, 'jump_max'):.4f}"
        f" / {r('identity', 2, 'jump_max'):.4f} vs within {r('vjp', 2, 'within_max'):.4f}; naive {r('naive', 2, 'jump_max'):.4f})"
        f" and remove mode switches (naive {r('naive', 2, 'switch_rate'):.1%}, vjp {r('vjp', 2, 'switch_rate'):.1%},"
        f" identity {r('identity', 2, 'switch_rate'):.1%}). The reduction grows with d"
        f" (vjp {r('naive', 1, 'jump_max') / r('vjp', 1, 'jump_max'):.1f}x at d = 1,"
        f" {r('naive', dmax, 'jump_max') / r('vjp', dmax, 'jump_max'):.1f}x at d = {dmax}).",
        f"- Training-time RTC (prefix) pins only the first d actions (no soft overlap): at d = 0 it is plain sampling,"
        f" at d = 2 it cuts the jump {r('naive', 2, 'jump_max') / r('prefix', 2, 'jump_max'):.1f}x and mode switches to"
        f" {r('prefix', 2, 'switch_rate'):.1%}; it has the fewest collisions of the asynchronous methods ({r('prefix', 2, 'collision'):.1%} at d = 2).",
        f"- Collisions: naive async degrades with delay ({r('naive', 0, 'collision'):.1%} at d = 0,"
        f" {r('naive', dmax, 'collision'):.1%} at d = {dmax}); guided RTC stays flat (vjp {r('vjp', 0, 'collision'):.1%} ..."
        f" {r('vjp', dmax, 'collision'):.1%}, identity {r('identity', 0, 'collision'):.1%} ..."
        f" {r('identity', dmax, 'collision'):.1%}) but is worse than naive at small d: following the older plan"
        " gives up some closed-loop correction of this imperfect policy (identity more than vjp).",
        f"- Temporal ensembling is the smoothest (max jump {r('te', 2, 'jump_max'):.4f}) but averages the two sides and"
        f" drives into the obstacle ({r('te', 2, 'collision'):.1%} of rollouts at d = 2), and needs one inference per step.",
        f"- Synchronous execution has no inconsistency at d = 0 but stops during every inference: progress after"
        f" {toy.EP_STEPS} steps {r('sync', 2, 'progress'):.2f} vs {r('vjp', 2, 'progress'):.2f} for RTC at d = 2,"
        " and the stop/restart is itself a velocity jump.",
    ]
    if toy_ms is not None:
        out.append(
            f"- Cost: the toy MLP forward takes ~{toy_ms['plain'] / 10:.2f} ms, so its vjp ratio"
            f" ({toy_ms['vjp'] / toy_ms['plain']:.1f}x) measures PyTorch autograd overhead, not model compute. On the"
            " tiny pi0.5 (the real PI0Pytorch code path: the VLM prefix runs once, the VJP goes through the action"
            " expert only)"
            + (
                f" vjp costs {pi05_ms['vjp'] / pi05_ms['plain']:.2f}x plain, identity"
                f" {pi05_ms['identity'] / pi05_ms['plain']:.2f}x, prefix {pi05_ms['prefix'] / pi05_ms['plain']:.2f}x"
                " (the paper reports +28% for vjp on pi0.5)."
                if pi05_ms is not None
                else " (not measured in this run)."
            )
        )
    return out


def no_prev_equals_plain(models, norm) -> float:
    obs = toy.ToyObservation(norm.state(np.array([[0.1, 0.0], [0.2, 0.05]]), np.array([[0.0105, 0.0]] * 2)))
    z = torch.randn(2, toy.H, toy.ACTION_DIM, generator=torch.Generator().manual_seed(0))
    diffs = []
    for name in ("plain", "prefix"):
        base = models[name].sample_actions("cpu", obs, noise=z)
        for method in ("vjp", "identity", "prefix"):
            out = rtc_t.sample_actions_rtc(
                models[name], "cpu", obs, prev_chunk=torch.zeros(2, 0, 2), inference_delay=0, method=method, noise=z
            )
            diffs.append(float((out - base).abs().max()))
    return max(diffs)


def main(args: Args):
    torch.set_num_threads(1)
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    models, norm, train_s = get_policies(args)
    print(f"policies ready in {time.perf_counter() - t0:.0f} s (train: {train_s})", flush=True)
    equal_diff = no_prev_equals_plain(models, norm)
    t0 = time.perf_counter()
    rows = run_grid(models, norm, args)
    rows_s = run_s_sweep(models, norm, args)
    rows_beta = run_beta_sweep(models, norm, args)
    print(f"rollouts in {time.perf_counter() - t0:.0f} s", flush=True)
    toy_ms = time_toy(models, norm, args)
    pi05_ms = None if args.skip_pi05 else time_pi05(args)
    plot(models, norm, args, out_dir / "rtc_swap.png")
    md = markdown(rows, rows_s, rows_beta, toy_ms, pi05_ms, train_s, equal_diff, args)
    print(md)
    tmp = out_dir / "rtc.md.partial"
    tmp.write_text(md)
    os.replace(tmp, out_dir / "rtc.md")


if __name__ == "__main__":
    main(tyro.cli(Args))
