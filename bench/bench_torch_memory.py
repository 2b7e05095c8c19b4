"""Host memory of loading a PyTorch pi0 / pi0.5 checkpoint (meta-device build + assign), each step in a fresh process.

    python bench/bench_torch_memory.py write DIR --preset mem1g|pi05_full [--precision bfloat16]
    python bench/bench_torch_memory.py load DIR --preset ...      # prints one JSON line: peak RSS growth / file size

`write` fills an upstream-layout model.safetensors with random values tensor by tensor (no model is built);
`load` reads VmRSS before building, loads the dir with openpi.models_pytorch.loading.load_pytorch_model, then reads
VmHWM (peak RSS of the process) and VmRSS: growth = VmHWM - RSS before building. Used by
tests/models_torch/test_models_torch_memory.py (preset mem1g) and for bench/RESULTS.md (pi05_full).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

PRESETS = {
    # >= 1 GB in bfloat16: two gemma_300m experts, tiny SigLIP, small vocab (every tensor is a real model tensor).
    "mem1g": dict(
        pi05=True,
        paligemma_variant="gemma_300m",
        action_expert_variant="gemma_300m",
        vision_variant="tiny",
        paligemma_vocab_size=1024,
    ),
    "pi05_full": dict(pi05=True),  # upstream pi05_base dimensions (3.6e9 parameters)
    "pi0_full": dict(pi05=False),
}


def status_kb(field: str) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def config(preset: str, precision: str):
    from openpi.models import pi0_config

    return pi0_config.Pi0Config(dtype=precision, **PRESETS[preset])


def write(out: pathlib.Path, preset: str, precision: str) -> dict:
    import torch

    from openpi.models_pytorch import loading
    from openpi.models_pytorch import safetensors_io

    cfg = config(preset, precision)
    meta_model = loading.build_on_meta(cfg)
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, p in meta_model.state_dict().items():
        state[name] = (torch.randn(p.shape, generator=gen) * 0.02).to(loading.target_dtype(name, precision))
    out.mkdir(parents=True, exist_ok=True)
    file_state, meta = {}, {loading.EMBED: loading.LM_HEAD}
    for k, v in state.items():
        file_state[loading.LM_HEAD if k == loading.EMBED else k] = v
    emb = state[loading.EMBED]
    file_state[loading.EXPERT_LM_HEAD] = safetensors_io.Zeros(
        (emb.shape[0], meta_model.action_in_proj.out_features), emb.dtype
    )
    path = safetensors_io.write(out / "model.safetensors", file_state, meta)
    (out / "config.json").write_text(json.dumps(loading.config_json(cfg, precision), indent=2))
    return {"file_bytes": path.stat().st_size}


def load(ckpt: pathlib.Path, preset: str, precision: str) -> dict:
    import torch

    from openpi.models_pytorch import loading

    cfg = config(preset, precision)
    before = status_kb("VmRSS")
    start = time.monotonic()
    model = loading.load_pytorch_model(cfg, ckpt, precision=precision)
    seconds = time.monotonic() - start
    peak, after = status_kb("VmHWM"), status_kb("VmRSS")
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    file_bytes = (ckpt / "model.safetensors").stat().st_size
    assert all(p.device.type == "cpu" and not p.is_meta for p in model.parameters())
    assert torch.isfinite(next(model.parameters())).all()
    return {
        "preset": preset,
        "precision": precision,
        "file_bytes": file_bytes,
        "param_bytes": param_bytes,
        "rss_before_kb": before,
        "peak_growth_bytes": (peak - before) * 1024,
        "rss_growth_bytes": (after - before) * 1024,
        "peak_growth_over_file": (peak - before) * 1024 / file_bytes,
        "load_seconds": seconds,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=["write", "load"])
    parser.add_argument("dir", type=pathlib.Path)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="mem1g")
    parser.add_argument("--precision", choices=["bfloat16", "float32"], default="bfloat16")
    args = parser.parse_args(argv)
    fn = write if args.step == "write" else load
    print("RESULT " + json.dumps(fn(args.dir, args.preset, args.precision)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
