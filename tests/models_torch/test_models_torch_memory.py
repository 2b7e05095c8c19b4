"""Loading builds the model on the meta device and assigns the tensors read from disk: in a fresh process the peak
RSS growth (VmHWM - RSS before building) stays within 1.25x the safetensors file (same dtype) on a >= 1 GB model."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "bench_torch_memory.py"


def _run(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(BENCH), *map(str, args)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))[len("RESULT ") :])


@pytest.mark.slow
def test_peak_rss_of_loading_is_within_1_25x_the_file(tmp_path):
    _run("write", tmp_path, "--preset", "mem1g")  # another process: random values, upstream layout, bf16
    r = _run("load", tmp_path, "--preset", "mem1g")
    print(json.dumps(r, indent=1))
    assert r["file_bytes"] >= 1e9
    assert r["param_bytes"] >= 0.99 * r["file_bytes"] - 2**20 * 8  # the file is the model (+ tiny header)
    assert r["peak_growth_over_file"] <= 1.25, r
