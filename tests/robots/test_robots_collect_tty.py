"""The collection keys through a real terminal: `python -m robot_piper.collect --sim --controls keys` runs on a
pseudo-terminal (pty) and is driven by key presses written to it, exactly as an operator types them: start, stop
and save, start, discard, start, stop and save, finish. The dataset holds the two saved episodes, the live status
line was drawn, and the terminal settings are restored when the program exits."""

from __future__ import annotations

import os
import pathlib
import pty
import select
import subprocess
import sys
import termios
import time

import pytest


class Terminal:
    def __init__(self, cmd, env):
        self.master, slave = pty.openpty()
        self.slave_attrs = termios.tcgetattr(slave)
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        self.slave = slave
        self.out = ""

    def read_until(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.out:
            exited = self.proc.poll() is not None
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                self.out += os.read(self.master, 65536).decode(errors="replace")
            elif exited or time.monotonic() > deadline:  # nothing more to read
                raise AssertionError(f"{text!r} not printed (exit {self.proc.poll()}); output:\n{self.out[-3000:]}")
        return self.out

    def press(self, key: str, then_wait: float = 0.0) -> None:
        os.write(self.master, key.encode())
        time.sleep(then_wait)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        os.close(self.master)
        os.close(self.slave)


@pytest.mark.slow
def test_keys_on_a_real_terminal_start_stop_discard_and_finish(tmp_path, repo_root):
    env = dict(os.environ, HF_LEROBOT_HOME=str(tmp_path), COLUMNS="200")
    cmd = [sys.executable, "-m", "robot_piper.collect", "--sim", "--controls", "keys", "--repo-id", "tty_test"]
    cmd += ["--num-episodes", "2", "--episode-steps", "3000", "--cameras.height", "32", "--cameras.width", "32"]
    cmd += ["--keep-off-rate"]  # about the keys, not the clock (test_robots_recording_rate.py)
    term = Terminal(cmd, env)
    try:
        term.read_until("episode 1/2: Enter/space start")
        term.press("\n", then_wait=1.0)  # start episode 1, record ~1 s
        assert termios.tcgetattr(term.slave)[3] & termios.ICANON == 0  # single keys, no Enter needed
        term.press(" ")  # stop and save it
        term.read_until("episode 1/2 saved")
        term.read_until("episode 2/2: Enter/space start")
        term.press(" ", then_wait=0.5)  # start episode 2 ...
        term.press("d")  # ... and throw it away
        term.read_until("episode 2/2 discarded")
        term.read_until("episode 2/2: Enter/space start")
        term.press("\n", then_wait=0.7)
        term.press("\n")
        term.read_until("episode 2/2 saved")
        term.read_until("all 2 episodes recorded")
        term.press("q")
        assert term.proc.wait(timeout=120) == 0, term.out[-3000:]
        term.read_until("kept 2 episodes")
        # The program put the terminal in cbreak mode while recording; it is back as it was (canonical, echo).
        assert termios.tcgetattr(term.slave) == term.slave_attrs
    finally:
        term.close()
    out = term.out
    assert "fps" in out and "\r" in out  # the live status line was redrawn in place
    assert "discarded 1" in out
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("tty_test", root=pathlib.Path(tmp_path) / "tty_test", video_backend="torchcodec")
    assert ds.meta.total_episodes == 2
    lengths = [int(e["length"]) for e in ds.meta.episodes]
    assert all(10 <= n <= 60 for n in lengths), lengths  # ~1 s and ~0.7 s at 30 fps, stopped by the key
