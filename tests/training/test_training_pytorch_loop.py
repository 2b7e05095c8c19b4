"""PyTorch trainer on a toy model: DDP(2 ranks, gloo) == single process, SIGKILL + resume, checkpoint files."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from openpi.training import checkpoints
from openpi.training import utils

HERE = pathlib.Path(__file__).parent
ENTRY = HERE / "training_toy_torch.py"
PY = sys.executable


def _run(args, env_extra=None, torchrun=False, check=True):
    env = dict(os.environ, PYTHONPATH=str(HERE), OMP_NUM_THREADS="1")
    env.update(env_extra or {})
    cmd = [PY, str(ENTRY), *map(str, args)]
    if torchrun:
        cmd = [PY, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2", *cmd[1:]]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def _losses(path):
    return {int(k): v for k, v in json.loads(pathlib.Path(path).read_text()).items()}


@pytest.mark.slow
def test_ddp_two_ranks_matches_single_process_and_resume_after_sigkill(tmp_path):
    _run([tmp_path / "single", 10, 0, tmp_path / "single.json"])
    single = _losses(tmp_path / "single.json")
    assert np.mean([single[s] for s in (7, 8, 9)]) < 0.9 * np.mean([single[s] for s in (0, 1, 2)]), single

    _run([tmp_path / "ddp", 10, 0, tmp_path / "ddp.json"], torchrun=True)
    ddp = _losses(tmp_path / "ddp.json")
    for s in range(10):
        np.testing.assert_allclose(ddp[s], single[s], rtol=1e-4, atol=1e-6, err_msg=f"step {s}")

    # layout of the step dir written by rank 0
    step = tmp_path / "ddp" / "toy_torch" / "exp" / "10"
    names = sorted(p.name for p in step.iterdir())
    assert names == ["metadata.pt", "model.safetensors", "optimizer.pt", "raw_model.safetensors"]
    meta = torch.load(step / "metadata.pt", weights_only=False)
    assert meta["global_step"] == 10 and meta["world_size"] == 2

    # SIGKILL at step 7 (after the step-5 checkpoint): resume continues from 5 and matches the full run
    killed = _run([tmp_path / "kill", 10, 0, tmp_path / "kill.json", 7], check=False)
    assert killed.returncode != 0
    ckdir = tmp_path / "kill" / "toy_torch" / "exp"
    assert checkpoints.list_steps(ckdir) == [5]
    _run([tmp_path / "kill", 10, 1, tmp_path / "resumed.json"])
    resumed = _losses(tmp_path / "resumed.json")
    assert min(resumed) == 5
    for s in range(5, 10):
        np.testing.assert_allclose(resumed[s], single[s], rtol=1e-5, atol=1e-7, err_msg=f"step {s}")
    assert [r["step"] for r in utils.read_metrics(ckdir / "metrics.jsonl")] == list(range(10))
    # EMA + optimizer state survived: the served (EMA) weights equal the uninterrupted run's
    from safetensors.numpy import load_file

    a = load_file(str(tmp_path / "single" / "toy_torch" / "exp" / "10" / "model.safetensors"))
    b = load_file(str(ckdir / "10" / "model.safetensors"))
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
