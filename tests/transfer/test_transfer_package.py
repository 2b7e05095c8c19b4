"""Checkpoint packaging (no train_state, original untouched, atomic) and the rsync wrapper on real files."""

import hashlib
import os
import pathlib
import subprocess
import sys

import pytest

from openpi.transfer import hub
from openpi.transfer import packaging
from openpi.transfer import rsync as rsync_mod

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _digest(root: pathlib.Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def _jax_step(root: pathlib.Path) -> pathlib.Path:
    step = root / "checkpoints" / "pi05_piper_pick_cube" / "exp" / "1000"
    for rel, data in {
        "params/_METADATA": b"{}",
        "params/d/0000": os.urandom(4096),
        "train_state/opt/0000": os.urandom(8192),
        "assets/piper/norm_stats.json": b'{"norm_stats": {}}',
        "_CHECKPOINT_METADATA": b"{}",
    }.items():
        (step / rel).parent.mkdir(parents=True, exist_ok=True)
        (step / rel).write_bytes(data)
    return step


def test_jax_package_drops_train_state_and_keeps_original(tmp_path):
    step = _jax_step(tmp_path)
    before = _digest(step)
    pkg = packaging.package_checkpoint(step)
    assert pkg == step.parent.with_name("exp_package") / "1000"
    got = _digest(pkg)
    assert set(got) == {"params/_METADATA", "params/d/0000", "assets/piper/norm_stats.json"}
    assert all(got[k] == before[k] for k in got)
    assert _digest(step) == before  # original untouched
    assert not list(pkg.parent.glob(".*tmp-*"))  # no temp dir left behind
    with pytest.raises(hub.TransferError, match="already exists"):
        packaging.package_checkpoint(step)
    packaging.package_checkpoint(step, overwrite=True)


def test_pytorch_package_and_explicit_strip(tmp_path):
    step = tmp_path / "ckpt" / "500"
    (step / "assets" / "flexiv_pose").mkdir(parents=True)
    (step / "assets" / "flexiv_pose" / "norm_stats.json").write_text("{}")
    (step / "model.safetensors").write_bytes(os.urandom(1000))
    (step / "optimizer.pt").write_bytes(os.urandom(3000))
    (step / "config.json").write_text('{"pi05": true}')
    pkg = packaging.package_checkpoint(step, tmp_path / "pkg")
    assert sorted(_digest(pkg)) == ["assets/flexiv_pose/norm_stats.json", "config.json", "model.safetensors"]
    assert (step / "optimizer.pt").exists()
    removed = packaging.strip_train_state_in_place(step)
    assert removed == [step / "optimizer.pt"] and not (step / "optimizer.pt").exists()
    assert (step / "model.safetensors").exists()


def test_package_errors_name_the_fix(tmp_path):
    with pytest.raises(hub.TransferError, match="params/ for JAX or model.safetensors"):
        packaging.package_checkpoint(tmp_path)
    step = _jax_step(tmp_path)
    import shutil

    shutil.rmtree(step / "assets")
    with pytest.raises(hub.TransferError, match="norm_stats.json"):
        packaging.package_checkpoint(step, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_package_dry_run_lists_without_writing(tmp_path):
    step = _jax_step(tmp_path)
    r = subprocess.run(
        [sys.executable, "scripts/transfer.py", "upload-model", "--ckpt", str(step), "--repo", "me/m", "--dry-run"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "params/d/0000" in r.stdout and "train_state/" not in r.stdout and "3 files" in r.stdout
    assert not step.parent.with_name("exp_package").exists()


def test_rsync_copies_and_resumes_checksummed(tmp_path):
    src = tmp_path / "src"
    (src / "videos").mkdir(parents=True)
    (src / "videos" / "ep0.mp4").write_bytes(os.urandom(300_000))
    (src / "meta.json").write_text('{"fps": 30}')
    dest = tmp_path / "dest"
    assert rsync_mod.run_rsync(f"{src}/", str(dest)) == 0
    assert _digest(dest) == _digest(src)
    # An interrupted copy leaves a truncated file behind; a rerun completes it (--partial/--append-verify).
    data = (src / "videos" / "ep0.mp4").read_bytes()
    (dest / "videos" / "ep0.mp4").write_bytes(data[:100_000])
    assert rsync_mod.run_rsync(f"{src}/", str(dest)) == 0
    assert _digest(dest) == _digest(src)
    cmd = rsync_mod.rsync_command("a/", "host:/b/", ssh_port=2222, bwlimit_kbps=5000)
    assert "--checksum" in cmd and "--partial" in cmd and cmd[-2:] == ["a/", "host:/b/"]
