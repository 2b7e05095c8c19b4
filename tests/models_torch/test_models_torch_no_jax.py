"""The PyTorch path imports no jax / flax / optax / orbax: in a subprocess with them blocked in sys.modules, a torch
pi0.5 is built from its config, saved, loaded and sampled, trained one step through scripts/train_pytorch.py, and the
trained checkpoint dir is served over a real websocket (no_jax_entry.py)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).parent


@pytest.mark.slow
def test_build_load_sample_train_serve_with_jax_blocked(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(HERE / "no_jax_entry.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["jax_modules_loaded"] == []
    assert result["reload_max_diff"] == 0.0 and result["actions_shape"] == [2, 10, 32]
    assert {"model.safetensors", "optimizer.pt", "metadata.pt"} <= set(result["trained_files"])
    assert result["served_actions_shape"] == [10, 32] and result["served_finite"]
