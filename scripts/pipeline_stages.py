"""Helpers shared by the pipeline scripts (`demo.py`, `sim_benchmark.py`): run a stage, serve a checkpoint."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_stage(tag: str, stage: str, cmd: list, env: dict) -> float:
    """Run one stage's command from the repo root (fails loudly) and return its duration in seconds."""
    print(f"\n=== [{tag}] {stage}: {' '.join(map(str, cmd))}", flush=True)
    start = time.time()
    subprocess.run([str(c) for c in cmd], check=True, env=env, cwd=ROOT)
    took = time.time() - start
    print(f"=== [{tag}] {stage} done in {took:.0f}s", flush=True)
    return took


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 600, log: str | None = None) -> None:
    """Wait for the policy server's /healthz; raise if the process exits or the time runs out."""
    where = f"; see {log}" if log else ""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"policy server exited with code {proc.returncode}{where}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"policy server did not become healthy on port {port} within {timeout}s{where}")


class PolicyServer:
    """scripts/serve_policy.py for one checkpoint on a free loopback port; stopped when the `with` block ends."""

    def __init__(self, config: str, ckpt: pathlib.Path, env: dict, log: pathlib.Path | None = None):
        self.port = free_port()
        cmd = [sys.executable, "scripts/serve_policy.py", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["policy:checkpoint", f"--policy.config={config}", f"--policy.dir={ckpt}"]
        print(f"\n=== serve: {' '.join(cmd)}", flush=True)
        self._log = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log, "w")  # noqa: SIM115 - closed in __exit__
        out = self._log if self._log is not None else None
        self._proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT if out else None)
        self.started = time.time()

    def __enter__(self) -> PolicyServer:
        wait_healthy(self.port, self._proc, log=self._log.name if self._log else None)
        self.startup_s = time.time() - self.started
        return self

    def __exit__(self, *exc) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._log is not None:
            self._log.close()
