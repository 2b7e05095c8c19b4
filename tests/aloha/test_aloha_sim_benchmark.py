"""`make sim-benchmark ARGS=--smoke`: every stage of the closed-loop benchmark at CI size (real commands, real
server, real simulator), privileged tier: generate -> norm stats -> train -> serve -> evaluate with the expert row."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_sim_benchmark_smoke_runs_every_stage(repo_root, tmp_path):
    env = dict(os.environ, OPENPI_DATA_HOME=str(tmp_path / "cache"))
    out = tmp_path / "out"
    cmd = [sys.executable, "scripts/sim_benchmark.py", "--smoke", "--tier", "privileged", "--exp-name", "ci"]
    for flag, sub in (
        ("--datasets-dir", "datasets"),
        ("--checkpoint-base-dir", "checkpoints"),
        ("--assets-base-dir", "assets"),
        ("--out-dir", "out"),
    ):
        cmd += [flag, str(tmp_path / sub)]
    r = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    info = json.loads((tmp_path / "datasets" / "aloha_sim_transfer_small" / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2 and "observation.environment_state" in info["features"]
    ckpt = tmp_path / "checkpoints" / "pi0_aloha_sim_small_privileged" / "ci"
    assert sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) == [2, 4]
    rows = [json.loads(line) for line in (ckpt / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert all(0.0 <= row["data_wait_frac"] <= 1.0 and row["step_time_s"] > 0 for row in rows)
    # The frame cache was built and used.
    assert list((tmp_path / "cache" / "frame_cache" / "aloha_sim_transfer_small").glob("*/meta.json"))
    results = json.loads((out / "privileged" / "results.json").read_text())
    assert [p["step"] for p in results["points"]] == [2, 4]
    for point in results["points"]:
        assert point["policy"]["episodes"] == 2 and "expert" in point
        lo, hi = point["policy"]["success_ci95"]
        assert 0.0 <= lo <= point["policy"]["success_rate"] <= hi <= 1.0
    summary = json.loads((out / "privileged" / "eval_step4" / "summary.json").read_text())
    assert [e["seed"] for e in summary["episodes"]] == [100000, 100001]
    assert all(e["requests"] >= 1 for e in summary["episodes"])
    assert (out / "privileged" / "curve.png").stat().st_size > 1000
    # The final checkpoint is also run with the ensemble executor, on the same seeds.
    ens = results["points"][-1]["executors"]["ensemble"]
    assert ens["episodes"] == 2 and 0.0 <= ens["success_rate"] <= 1.0
    ens_summary = json.loads((out / "privileged" / "eval_step4_ensemble" / "summary.json").read_text())
    assert [e["seed"] for e in ens_summary["episodes"]] == [100000, 100001]
    md = (out / "privileged" / "results.md").read_text()
    assert "| 4 |" in md and "| 4, `ensemble` executor |" in md
