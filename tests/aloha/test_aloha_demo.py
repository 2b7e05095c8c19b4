"""`make demo` end to end on a CPU (tiny sizes): generate -> norm stats -> train (JAX) -> serve -> sim client, then the
shipped policy served and evaluated."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_pipeline_runs_every_stage(repo_root, tmp_path):
    env = dict(os.environ, OPENPI_DATA_HOME=str(tmp_path / "cache"))
    cmd = [
        sys.executable,
        "scripts/demo.py",
        "--num-episodes",
        "1",
        "--train-steps",
        "4",
        "--batch-size",
        "2",
        "--image-height",
        "48",
        "--image-width",
        "64",
        "--episode-steps",
        "20",
        "--exp-name",
        "ci",
        "--out-dir",
        str(tmp_path / "out"),
        "--datasets-dir",
        str(tmp_path / "datasets"),
        "--checkpoint-base-dir",
        str(tmp_path / "checkpoints"),
        "--assets-base-dir",
        str(tmp_path / "assets"),
        "--shipped-episodes",
        "1",
        "--shipped-episode-steps",
        "30",
    ]
    r = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ckpt = tmp_path / "checkpoints" / "debug_pi05_aloha_sim" / "ci"
    steps = sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())
    assert steps and steps[-1] == 4
    assert (ckpt / str(steps[-1]) / "params").is_dir()
    assert (ckpt / str(steps[-1]) / "assets" / "aloha_sim_scripted" / "norm_stats.json").exists()
    assert (tmp_path / "assets" / "debug_pi05_aloha_sim" / "aloha_sim_scripted" / "norm_stats.json").exists()
    rows = [json.loads(line) for line in (ckpt / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert rows and all("loss" in row for row in rows)
    summary = json.loads((tmp_path / "out" / "videos" / "summary.json").read_text())
    assert len(summary["rewards"]) == 1 and summary["videos"]
    assert os.path.getsize(summary["videos"][0]) > 1000
    assert (tmp_path / "out" / "loss.png").stat().st_size > 1000
    assert "finished in" in r.stdout
    # The shipped policy (examples/aloha_sim/policy) was unpacked, served and evaluated with a video.
    shipped = json.loads((tmp_path / "out" / "shipped" / "summary.json").read_text())
    assert shipped["policy"]["episodes"] == 1 and shipped["server_metadata"]["robot"] == "aloha_sim"
    assert shipped["videos"] and all(os.path.getsize(v) > 1000 for v in shipped["videos"].values())
    assert "SHIPPED policy" in r.stdout
