"""PyTorch eager vs torch.compile vs our JAX: sample_actions latency and compile time at first and second start.

Every measurement runs in its own process (one framework per process; the compile runs get a fresh or the reused
inductor cache under OPENPI_DATA_HOME):

    python bench/bench_torch_compile.py all [--preset golden_pi05] [--cache DIR] [--json OUT]
    python bench/bench_torch_compile.py one jax|eager|compiled [--preset ...]      # one process, one JSON line

Preset golden_pi05: the golden tiny pi0.5 (upstream's params), the golden observation (B=2), 10 Euler steps, the
same inputs as issue 22's measurements. Preset ci: a 1-layer pi0.5 (tests/models_torch/test_models_torch_compile.py).
Latency = median of `--reps` calls after one warm call; compile time = the first call (compile + one run).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

GOLDEN = pathlib.Path(__file__).resolve().parents[2] / "shared" / "golden"


def _config(preset: str):
    from openpi.models import pi0_config

    if preset == "golden_pi05":
        return pi0_config.Pi0Config(pi05=True, action_horizon=10, **{**pi0_config.TINY, "max_token_len": 64})
    if preset == "ci":
        tiny = {**pi0_config.TINY, "paligemma_variant": "dummy_1layer", "action_expert_variant": "dummy_1layer"}
        return pi0_config.Pi0Config(pi05=True, action_horizon=4, **{**tiny, "max_token_len": 8})
    raise ValueError(preset)


def _inputs(cfg, preset: str):
    """(numpy observation dict as Observation.from_dict takes it, noise [B, H, A])."""
    import numpy as np

    if preset == "golden_pi05":
        mi, v = np.load(GOLDEN / "model_inputs.npz"), np.load(GOLDEN / "pi05_tiny" / "vectors.npz")
        keys = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")
        obs = {
            "image": {k: mi[f"image/{k}"] for k in keys},
            "image_mask": {k: mi[f"image_mask/{k}"] for k in keys},
            "state": mi["state"],
            "tokenized_prompt": v["obs/tokenized_prompt"],
            "tokenized_prompt_mask": v["obs/tokenized_prompt_mask"],
        }
        return obs, mi["noise"]
    rng = np.random.default_rng(0)
    h, w = cfg.image_resolution
    obs = {
        "image": {k: rng.integers(0, 255, (2, h, w, 3), dtype=np.uint8) for k in cfg.image_keys},
        "image_mask": {k: np.ones(2, bool) for k in cfg.image_keys},
        "state": rng.uniform(-1, 1, (2, cfg.action_dim)).astype(np.float32),
        "tokenized_prompt": rng.integers(1, 1000, (2, cfg.max_token_len)).astype(np.int32),
        "tokenized_prompt_mask": np.ones((2, cfg.max_token_len), bool),
    }
    return obs, rng.normal(size=(2, cfg.action_horizon, cfg.action_dim)).astype(np.float32)


def _timed(fn, reps: int) -> tuple[float, float, float, object]:
    """(first call s, median and min of `reps` later calls in ms, last output). On a shared machine the min is the
    more stable figure (contention only adds time)."""
    import statistics

    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return first, statistics.median(times) * 1000, min(times) * 1000, out


def run_one(kind: str, preset: str, reps: int, mode: str, compile_prefix: bool = True) -> dict:
    import numpy as np

    cfg = _config(preset)
    obs_np, noise = _inputs(cfg, preset)
    if kind == "jax":
        from flax import nnx
        import jax

        from openpi.models import model as _model

        params = _model.restore_params(GOLDEN / "pi05_tiny" / "params") if preset == "golden_pi05" else None
        model = cfg.load(params) if params is not None else cfg.create(jax.random.key(0))
        obs = _model.Observation.from_dict(jax.tree.map(jax.numpy.asarray, obs_np))
        graphdef, state = nnx.split(model)
        sample = jax.jit(lambda s, o, n: nnx.merge(graphdef, s).sample_actions(jax.random.key(0), o, noise=n))
        first, ms, best, out = _timed(lambda: np.asarray(sample(state, obs, noise)), reps)
        return {
            "kind": kind,
            "first_call_s": first,
            "latency_ms": ms,
            "latency_min_ms": best,
            "actions": np.asarray(out).tolist(),
        }

    import torch

    from openpi.models import model as _model
    from openpi.models_pytorch import compile as _compile
    from openpi.models_pytorch import convert
    from openpi.models_pytorch import loading
    from openpi.shared.tree import tree_map

    model = loading.build_on_meta(cfg)
    if preset == "golden_pi05":
        state = convert.jax_to_torch(dict(np.load(GOLDEN / "pi05_tiny" / "params_flat.npz")))
    else:
        torch.manual_seed(0)
        state = type(model)(cfg).state_dict()
    model.load_state_dict(state, assign=True)
    model.eval()
    obs = _model.Observation.from_dict(tree_map(torch.as_tensor, obs_np))
    tnoise = torch.as_tensor(noise)
    eager_out = None
    if kind == "compiled":
        with torch.no_grad():
            eager_out = model.sample_actions("cpu", obs, noise=tnoise)
        _compile.compile_model(model, mode, compile_prefix=compile_prefix)
    first, ms, best, out = _timed(lambda: model.sample_actions("cpu", obs, noise=tnoise), reps)
    result = {"kind": kind, "first_call_s": first, "latency_ms": ms, "latency_min_ms": best}
    result["actions"] = out.numpy().tolist()
    if kind == "compiled":
        result["mode"], result["compile_prefix"] = mode, compile_prefix
        result["max_abs_diff_vs_eager_same_process"] = float((out - eager_out).abs().max())
        result.update(_paired(model, obs, tnoise, reps))
        result["cache_dir"] = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    return result


def _paired(model, obs, noise, reps: int) -> dict:
    """Eager and compiled calls alternated in one process (same weights, same load): contention hits both alike."""
    import statistics

    import torch

    compiled = (model._velocity_impl, model._prefix_impl)
    eager = (model._velocity, model._prefix)
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    with torch.no_grad():
        for _ in range(reps):
            for name, (velocity, prefix) in (("eager", eager), ("compiled", compiled)):
                model._velocity_impl, model._prefix_impl = velocity, prefix
                t = time.perf_counter()
                model.sample_actions("cpu", obs, noise=noise)
                times[name].append((time.perf_counter() - t) * 1000)
    model._velocity_impl, model._prefix_impl = compiled
    out = {f"paired_{k}_median_ms": statistics.median(v) for k, v in times.items()}
    out.update({f"paired_{k}_min_ms": min(v) for k, v in times.items()})
    return out


def _spawn(kind: str, preset: str, reps: int, mode: str, data_home: str, compile_prefix: bool = True) -> dict:
    env = dict(os.environ, OPENPI_DATA_HOME=data_home)
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    cmd = [sys.executable, __file__, "one", kind, "--preset", preset, "--reps", str(reps), "--mode", mode]
    cmd += [] if compile_prefix else ["--step-only"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))[len("RESULT ") :])
    result["process_s"] = time.perf_counter() - start
    return result


def run_all(
    preset: str, reps: int, mode: str, cache: str | None, with_jax: bool = True, compile_prefix: bool = True
) -> dict:
    import numpy as np

    home = cache or tempfile.mkdtemp(prefix="openpi_compile_bench_")
    runs = {"eager": _spawn("eager", preset, reps, mode, home)}
    if with_jax:
        runs["jax"] = _spawn("jax", preset, reps, mode, home)
    runs["compiled_first_start"] = _spawn("compiled", preset, reps, mode, home, compile_prefix)
    runs["compiled_second_start"] = _spawn("compiled", preset, reps, mode, home, compile_prefix)
    ref = np.asarray(runs["eager"]["actions"])
    for r in runs.values():
        r["max_abs_diff_vs_eager"] = float(np.abs(np.asarray(r.pop("actions")) - ref).max())
    first, second = runs["compiled_first_start"]["first_call_s"], runs["compiled_second_start"]["first_call_s"]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "torch": __import__("torch").__version__,
        "preset": preset,
        "mode": mode,
        "runs": runs,
        "second_over_first_compile": second / first,
        "load_average": os.getloadavg(),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["all", "one"])
    parser.add_argument("kind", nargs="?", choices=["jax", "eager", "compiled"])
    parser.add_argument("--preset", default="golden_pi05", choices=["golden_pi05", "ci"])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--mode", default="default")
    parser.add_argument("--cache", default=None, help="OPENPI_DATA_HOME for the compile runs (default: a fresh dir)")
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--step-only", action="store_true", help="compile the denoising step, not the prefix pass")
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    if args.what == "one":
        result = run_one(args.kind, args.preset, args.reps, args.mode, compile_prefix=not args.step_only)
        print("RESULT " + json.dumps(result), flush=True)
        return
    report = run_all(
        args.preset, args.reps, args.mode, args.cache, with_jax=not args.no_jax, compile_prefix=not args.step_only
    )
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
