"""Hub upload / download / resume against a loopback stand-in of the hub HTTP API (HF_ENDPOINT)."""

import hashlib
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from transfer_hub_standin import HubStandIn

from openpi.transfer import hub

TOKEN = "hf_test_token"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _make_dataset(root: pathlib.Path, n_big: int = 4, big_size: int = 200_000) -> pathlib.Path:
    """A LeRobot-shaped folder: small json/jsonl (regular files) and binary parquet/mp4 stand-ins (LFS)."""
    rng = __import__("random").Random(0)
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text('{"fps": 30, "robot_type": "piper"}\n')
    (root / "meta" / "tasks.jsonl").write_text('{"task_index": 0, "task": "pick up the cube"}\n')
    for i in range(n_big):
        p = root / "videos" / f"episode_{i:06d}.mp4"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(big_size + i))
    (root / ".cache").mkdir()
    (root / ".cache" / "junk.partial").write_bytes(b"x" * 10)  # must never be uploaded
    return root


def _tree_digest(root: pathlib.Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(root).parts
    }


def _set_endpoint(monkeypatch, url: str) -> None:
    """What `export HF_ENDPOINT=...` before starting Python does, for the in-process calls of this test.

    Our code reads HF_ENDPOINT at call time; huggingface_hub reads it once at import (constants.ENDPOINT and the
    resolve-URL template that file_download imported by name), so those are patched too.
    """
    import huggingface_hub.constants as c
    import huggingface_hub.file_download as fd

    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(c, "ENDPOINT", url)
    monkeypatch.setattr(c, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(fd, "HUGGINGFACE_CO_URL_TEMPLATE", template)


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub._upload_large_folder as ulf

    monkeypatch.setattr(ulf, "WAITING_TIME_IF_NO_TASKS", 0.2)  # idle workers poll every 10 s by default
    with HubStandIn(token=TOKEN, lfs_threshold=10_000) as server:
        _set_endpoint(monkeypatch, server.url)
        yield server


@pytest.mark.parametrize("mode", ["folder", "large"])
def test_upload_then_download_bytes_equal(hub_env, tmp_path, mode):
    src = _make_dataset(tmp_path / "src")
    plan = hub.upload_folder(src, "me/piper_cube", repo_type="dataset", mode=mode)
    assert plan.mode == mode
    assert ".cache/junk.partial" not in dict(plan.files)
    repo = hub_env.state.repos[("dataset", "me/piper_cube")]
    assert repo.private  # private by default
    assert {p for p, (_, lfs) in repo.files.items() if lfs} == {f"videos/episode_{i:06d}.mp4" for i in range(4)}
    assert {p for p, (_, lfs) in repo.files.items() if not lfs} == {"meta/info.json", "meta/tasks.jsonl"}

    out = hub.download("me/piper_cube", tmp_path / "datasets" / "piper_cube", repo_type="dataset")
    assert _tree_digest(out) == _tree_digest(src)

    # Re-uploading unchanged data sends no LFS bytes again.
    sent = hub_env.state.lfs_put_bytes
    hub.upload_folder(src, "me/piper_cube", repo_type="dataset", mode=mode)
    assert hub_env.state.lfs_put_bytes == sent


def test_private_repo_needs_token_and_errors_are_clear(hub_env, tmp_path, monkeypatch):
    src = _make_dataset(tmp_path / "src", n_big=1)
    hub.upload_folder(src, "me/secret", repo_type="dataset")

    with pytest.raises(hub.TransferError, match="not found"):
        hub.download("me/does_not_exist", tmp_path / "x", repo_type="dataset")
    with pytest.raises(hub.TransferError, match=r"--repo 'noslash'"):
        hub.download("noslash", tmp_path / "x", repo_type="dataset")

    monkeypatch.delenv("HF_TOKEN")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    monkeypatch.setattr(c, "HF_STORED_TOKENS_PATH", str(tmp_path / "no_tokens"))
    with pytest.raises(hub.TransferError, match="not found"):  # private: invisible without a token
        hub.download("me/secret", tmp_path / "y", repo_type="dataset")
    with pytest.raises(hub.TransferError, match="hf auth login"):
        hub.upload_folder(src, "me/other", repo_type="dataset")
    assert ("dataset", "me/other") not in hub_env.state.repos


def test_network_failure_message(monkeypatch, tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    _set_endpoint(monkeypatch, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    src = _make_dataset(tmp_path / "src", n_big=1, big_size=10)
    with pytest.raises(hub.TransferError, match="network failure.*rerun the same command"):
        hub.upload_folder(src, "me/x", repo_type="dataset")


def test_auto_mode_and_dry_run(hub_env, tmp_path, monkeypatch, capsys):
    src = _make_dataset(tmp_path / "src", n_big=3, big_size=1000)
    assert hub.plan_upload(src).mode == "folder"
    monkeypatch.setattr(hub, "LARGE_FILES", 5)
    assert hub.plan_upload(src).mode == "large"  # 5 files >= 5
    monkeypatch.setattr(hub, "LARGE_FILES", 500)
    monkeypatch.setattr(hub, "LARGE_BYTES", 3000)
    assert hub.plan_upload(src).mode == "large"
    assert hub.plan_upload(src, mode="folder").mode == "folder"
    with pytest.raises(hub.TransferError, match="--force-mode"):
        hub.plan_upload(src, mode="huge")
    with pytest.raises(hub.TransferError, match="not a directory"):
        hub.plan_upload(tmp_path / "missing")

    n_requests = len(hub_env.state.requests)
    plan = hub.upload_folder(src, "me/dry", repo_type="dataset", dry_run=True)
    out = capsys.readouterr().out
    assert "5 files" in out and "[dry run]" in out and "videos/episode_000002.mp4" in out
    assert f"{plan.total_bytes / 1000:.1f} KB" in out
    assert len(hub_env.state.requests) == n_requests  # nothing was sent


def _cli_env(server) -> dict:
    env = dict(os.environ, HF_ENDPOINT=server.url, HF_TOKEN=TOKEN, PYTHONUNBUFFERED="1")
    env.pop("HF_HUB_OFFLINE", None)
    return env


_FAST_LARGE = (
    "import sys, runpy, huggingface_hub._upload_large_folder as m; m.WAITING_TIME_IF_NO_TASKS = 0.2; "
    "sys.argv = ['transfer.py', *sys.argv[1:]]; runpy.run_path('scripts/transfer.py', run_name='__main__')"
)


@pytest.mark.parametrize("mode", ["folder", "large"])
def test_resume_after_killed_upload(hub_env, tmp_path, mode):
    """Kill the CLI (SIGKILL) in the middle of the LFS uploads; the rerun sends each LFS object exactly once."""
    src = _make_dataset(tmp_path / "src", n_big=6, big_size=300_000)
    lfs_total = sum(p.stat().st_size for p in (src / "videos").iterdir())
    hub_env.state.hold_lfs_uploads_after = 2
    cmd = [
        sys.executable,
        "-c",
        _FAST_LARGE,
        "upload-dataset",
        "--repo",
        "me/resume",
        "--path",
        str(src),
        "--force-mode",
        mode,
        "--num-workers",
        "2",
    ]
    if mode == "folder":
        cmd = cmd[:-2]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=_cli_env(hub_env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while hub_env.state.lfs_put_count < 2 and time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert hub_env.state.lfs_put_count == 2
    assert hub_env.state.repos[("dataset", "me/resume")].files == {}  # nothing committed yet

    hub_env.state.hold_lfs_uploads_after = None
    hub_env.state.release.set()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=_cli_env(hub_env), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert hub_env.state.lfs_put_bytes == lfs_total  # the two finished objects were not sent again
    out = hub.download("me/resume", tmp_path / "dl", repo_type="dataset")
    assert _tree_digest(out) == _tree_digest(src)


def test_cli_errors_exit_2(tmp_path):
    env = dict(os.environ)
    env.pop("HF_TOKEN", None)
    env["HF_HOME"] = str(tmp_path / "hf_home")
    src = _make_dataset(tmp_path / "src", n_big=1, big_size=10)
    proc = subprocess.run(
        [sys.executable, "scripts/transfer.py", "upload-dataset", "--repo", "me/x", "--path", str(src)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "No Hugging Face token" in proc.stderr and "Traceback" not in proc.stderr


def test_make_upload_dataset_dry_run_keeps_path_as_data(tmp_path):
    """`make upload-dataset PATH=...` must treat PATH as the data path and still find python/make tools."""
    src = _make_dataset(tmp_path / "src", n_big=2, big_size=100)
    proc = subprocess.run(
        ["make", "-s", "upload-dataset", "REPO=me/x", f"PATH={src}", "DRY_RUN=1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 files" in proc.stdout and "[dry run]" in proc.stdout
