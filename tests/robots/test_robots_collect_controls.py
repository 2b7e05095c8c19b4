"""Collection session control (keys, auto), live stats, and crash safety of the episode recorder: every finished
episode survives a SIGKILL and is merged into the LeRobot dataset by --resume or the recovery command."""

import io
import os
import pathlib
import pty
import shlex
import shutil
import signal
import subprocess
import sys
import termios

import numpy as np
import pytest
import robots_crash_recorder as fake
import tyro

from robot_common import recorder as recorder_cli
from robot_common.collect import record_episodes
from robot_common.controls import Controls
from robot_common.controls import Progress
from robot_common.controls import TerminalKeys
from robot_common.controls import make_controls
from robot_common.recorder import EpisodeRecorder
from robot_common.recorder import UnmergedEpisodesError


class ScriptedKeys:
    """Key presses that become available once the leader has been called `n` times: [(n, key), ...]. A blocking
    wait with no key due can never end (nothing records between episodes), so it fails the test instead."""

    def __init__(self, script, counter):
        self.script, self.counter = list(script), counter

    def read(self, timeout):
        if self.script and self.script[0][0] <= self.counter["calls"]:
            return self.script.pop(0)[1]
        if timeout > 0 and (not self.script or self.script[0][0] > self.counter["calls"]):
            raise AssertionError(f"waiting for a key at call {self.counter['calls']}, next: {self.script[:1]}")
        return None


def _session(root, counter, *, controls, num_episodes=3, steps=10, realtime=False, repo_id="ctl", **kw):
    robot = fake.FakeRobot()
    recorder = EpisodeRecorder(repo_id, fps=30, features=fake.FEATURES, robot_type="fake", root=root, **kw)
    return record_episodes(
        robot,
        {"base": fake.FakeCamera(robot)},
        fake.make_leader(counter),
        recorder,
        task="t",
        num_episodes=num_episodes,
        episode_steps=steps,
        fps=30,
        vectors=fake.vectors,
        image_keys={"base": "observation.images.base"},
        realtime=realtime,
        controls=controls,
        progress=Progress(io.StringIO(), live=False),
    )


def _load(root, repo_id):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(repo_id, root=root / repo_id, video_backend="torchcodec")
    lengths = [int(x) for x in ds.meta.episodes["length"]]
    actions = np.stack([np.asarray(a) for a in ds.hf_dataset["action"]])  # [leader call number, t]
    return ds, lengths, actions


def test_keys_discard_stop_rerecord_quit_keep_exactly_the_right_episodes(tmp_path):
    counter = {"episode": 0, "calls": 0}
    script = [
        (0, "\n"),  # start attempt 1
        (4, "d"),  # discard it after 4 frames
        (4, "\n"),  # start attempt 2
        (11, " "),  # stop it early after 7 frames: saved (episode 1, calls 4..10)
        (11, "\n"),  # start attempt 3
        (14, "r"),  # re-record after 3 frames: attempt 4 starts at once and runs 10 frames (calls 14..23)
        (24, "d"),  # between episodes: discard the one just saved
        (24, "\n"),  # attempt 5: full 10 frames (calls 24..33) = episode 2
        (34, "q"),  # finish with 2 of 3 episodes
    ]
    stats = _session(tmp_path, counter, controls=Controls("keys", ScriptedKeys(script, counter)))
    assert [(a.frames, a.kept) for a in stats.attempts] == [(4, False), (7, True), (3, False), (10, False), (10, True)]
    assert stats.episodes_kept == 2 and stats.episodes_discarded == 3 and stats.frames == 17
    ds, lengths, actions = _load(tmp_path, "ctl")
    assert ds.num_episodes == 2 and lengths == [7, 10] and len(ds) == 17
    np.testing.assert_array_equal(actions[:, 0], np.r_[4:11, 24:34])  # exactly the kept attempts' frames
    assert not (tmp_path / ".ctl.staging").exists() and stats.dataset == tmp_path / "ctl"


def test_auto_mode_reset_pause_and_achieved_fps(tmp_path):
    counter = {"episode": 0, "calls": 0}
    stats = _session(
        tmp_path, counter, controls=Controls("auto", reset_seconds=0.3), num_episodes=2, steps=9, realtime=True
    )
    # kept episodes are on rate (an attempt a loaded machine stalled is rejected and recorded again)
    assert stats.episodes_kept == 2 and stats.frames == 18 and sum(a.overruns for a in stats.kept) == 0
    for a in stats.kept:  # 9 frames at 30 fps: 0.3 s
        assert 28.5 <= a.fps <= 31.5, a
    assert 28.5 <= stats.mean_fps <= 31.5
    # auto mode obeys keys too: q during the reset pause ends the session after the first episode
    counter = {"episode": 0, "calls": 0}
    keys = ScriptedKeys([(9, "q")], counter)
    stats = _session(tmp_path, counter, controls=Controls("auto", keys, reset_seconds=5), repo_id="ctl2", steps=9)
    assert stats.episodes_kept == 1 and _load(tmp_path, "ctl2")[1] == [9]


def test_slow_steps_are_counted_as_overruns(tmp_path):
    import time

    counter = {"episode": 0, "calls": 0}
    robot = fake.FakeRobot()
    leader = fake.make_leader(counter)
    slow = lambda t: (time.sleep(0.08) if t in (2, 5) else None, leader(t))[1]
    recorder = EpisodeRecorder("slow", fps=30, features=fake.FEATURES, robot_type="fake", root=tmp_path)
    stats = record_episodes(
        robot, {"base": fake.FakeCamera(robot)}, slow, recorder, task="t", num_episodes=1, episode_steps=8, fps=30,
        vectors=fake.vectors, image_keys={"base": "observation.images.base"}, progress=Progress(io.StringIO()),
        keep_off_rate=True,
    )  # fmt: skip
    assert stats.attempts[0].overruns == 2 and stats.attempts[0].fps < 25


@pytest.mark.slow  # ~15 s: the subprocess imports lerobot
def test_sigkill_mid_episode_keeps_finished_episodes_and_recovery_merges_them(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, str(pathlib.Path(__file__).with_name("robots_crash_recorder.py")),
         "--root", str(tmp_path), "--repo-id", "crash", "--steps", "6", "--crash-episode", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "CRASH_POINT"  # 2 episodes finished, the 3rd at step 3
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert not (tmp_path / "crash").exists()
    staged = sorted(p.name for p in (tmp_path / ".crash.staging").iterdir())
    assert len(staged) == 3 and staged[0].startswith(".tmp_")  # two finished + the unfinished one
    with pytest.raises(UnmergedEpisodesError, match="robot_common.recorder") as err:
        EpisodeRecorder("crash", fps=30, features=fake.FEATURES, robot_type="fake", root=tmp_path)
    command = shlex.split(str(err.value).split("`")[1])  # the exact command the user is told to run
    assert command[:3] == ["python", "-m", "robot_common.recorder"]
    recorder_cli.main(tyro.cli(recorder_cli.RecoverArgs, args=command[3:]))  # in-process: importing lerobot takes 10 s
    ds, lengths, actions = _load(tmp_path, "crash")
    assert lengths == [6, 6] and actions[:, 0].tolist() == list(range(12))
    assert not (tmp_path / ".crash.staging").exists()
    # append a session to the recovered dataset
    counter = {"episode": 0, "calls": 100}
    stats = _session(
        tmp_path, counter, controls=Controls("auto"), num_episodes=1, steps=5, repo_id="crash", resume=True
    )
    ds, lengths, actions = _load(tmp_path, "crash")
    assert stats.episodes_kept == 1 and lengths == [6, 6, 5] and actions[12:, 0].tolist() == list(range(100, 105))
    assert ds[14]["observation.images.base"].shape == (3, 16, 16) and int(ds[14]["episode_index"]) == 2


def test_resume_merges_leftovers_once_and_interrupted_swaps_are_repaired(tmp_path):
    kw = dict(fps=30, features=fake.FEATURES, robot_type="fake", root=tmp_path)
    rec = EpisodeRecorder("res", **kw)
    for n in (3, 4):  # two finished episodes, then the process "dies" (lock released, never closed)
        for i in range(n):
            rec.add_frame({**fake.vectors(np.array([n * 10 + i, i], float)), "observation.images.base":
                           np.zeros((16, 16, 3), np.uint8)}, "t")  # fmt: skip
        assert rec.save_episode()
    rec.add_frame({**fake.vectors(np.zeros(2)), "observation.images.base": np.zeros((16, 16, 3), np.uint8)}, "t")
    rec._lock.release()
    with pytest.raises(UnmergedEpisodesError, match="--resume"):
        EpisodeRecorder("res", **kw)
    stats = _session(tmp_path, {"episode": 0, "calls": 50}, controls=Controls("auto"), num_episodes=1, steps=2,
                     repo_id="res", resume=True)  # fmt: skip
    assert stats.episodes_kept == 1
    assert _load(tmp_path, "res")[1] == [3, 4, 2]
    # crash after the new version was moved in, before the staging dir was removed: nothing is merged twice
    shutil.copytree(tmp_path / "res", tmp_path / "backup")
    staged_name = __import__("json").loads((tmp_path / "res/meta/robot_common_episodes.json").read_text())[0]
    (tmp_path / ".res.staging").mkdir()
    shutil.copytree(tmp_path / "backup", tmp_path / ".res.staging" / staged_name)
    from robot_common.recorder import recover

    assert recover("res", tmp_path) == tmp_path / "res" and _load(tmp_path, "res")[1] == [3, 4, 2]
    # crash between "old version moved aside" and "new version moved in": the old version comes back
    os.rename(tmp_path / "res", tmp_path / ".res.replaced")
    with pytest.raises(FileExistsError, match="--resume to append"):
        EpisodeRecorder("res", **kw)
    assert _load(tmp_path, "res")[1] == [3, 4, 2] and not (tmp_path / ".res.replaced").exists()
    # --overwrite replaces it with the new session only
    _session(tmp_path, {"episode": 0, "calls": 0}, controls=Controls("auto"), num_episodes=1, steps=3, repo_id="res",
             overwrite=True)  # fmt: skip
    assert _load(tmp_path, "res")[1] == [3]
    with pytest.raises(ValueError, match="--fps"):
        EpisodeRecorder("res", **{**kw, "fps": 15}, resume=True)


def test_terminal_keys_cbreak_is_restored_even_on_errors():
    master, slave = pty.openpty()
    with os.fdopen(slave, "r") as stream:
        before = termios.tcgetattr(slave)
        assert TerminalKeys.available(stream) and before[3] & termios.ICANON

        def session_that_crashes():
            with Controls("keys", TerminalKeys(stream)) as ctl:
                assert not termios.tcgetattr(slave)[3] & termios.ICANON  # cbreak: single keys, no Enter needed
                assert termios.tcgetattr(slave)[3] & termios.ISIG  # Ctrl-C still interrupts
                os.write(master, b"d")
                assert ctl.poll().value == "discard" and ctl.poll() is None
                os.write(master, b" ")
                assert ctl.wait_start().value == "start"
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            session_that_crashes()
        assert termios.tcgetattr(slave) == before
    os.close(master)
    # no terminal on stdin: keys fall back to auto
    assert make_controls("keys", sim=False, stdin=io.StringIO()).mode == "auto"
    assert make_controls(None, sim=False, stdin=io.StringIO()).mode == "auto"
    with pytest.raises(ValueError, match="--reset-seconds"):
        Controls("auto", reset_seconds=-1)


def test_progress_line_is_rate_limited():
    out = io.StringIO()
    p = Progress(out, live=True, hz=4)
    for i in range(200):
        p.status(f"frame {i}")
    p.note("done")
    assert out.getvalue().count("frame") == 1 and out.getvalue().endswith("done\n")  # status line cleared


def test_last_episode_can_be_discarded_before_the_end_and_sigterm_keeps_finished_episodes(tmp_path):
    counter = {"episode": 0, "calls": 0}
    script = [(0, "\n"), (3, "d"), (3, "\n"), (6, "\n")]  # all 1 recorded -> d -> record again -> Enter: finish
    stats = _session(
        tmp_path, counter, controls=Controls("keys", ScriptedKeys(script, counter)), num_episodes=1, steps=3
    )
    assert [a.kept for a in stats.attempts] == [False, True]
    assert _load(tmp_path, "ctl")[2][:, 0].tolist() == [3, 4, 5]
    # SIGTERM (e.g. the session's terminal closed by a supervisor) ends it like Ctrl-C: finished episodes merged
    counter = {"episode": 0, "calls": 0}
    leader = fake.make_leader(counter)

    def killing_leader(t):
        if counter["calls"] == 7:
            os.kill(os.getpid(), signal.SIGTERM)
        return leader(t)

    robot = fake.FakeRobot()
    rec = EpisodeRecorder("term", fps=30, features=fake.FEATURES, robot_type="fake", root=tmp_path)
    before = signal.getsignal(signal.SIGTERM)
    stats = record_episodes(
        robot, {"base": fake.FakeCamera(robot)}, killing_leader, rec, task="t", num_episodes=5, episode_steps=3,
        fps=30, vectors=fake.vectors, image_keys={"base": "observation.images.base"}, realtime=False,
        progress=Progress(io.StringIO(), live=False),
    )  # fmt: skip
    assert stats.episodes_kept == 2 and _load(tmp_path, "term")[1] == [3, 3]
    assert signal.getsignal(signal.SIGTERM) == before
