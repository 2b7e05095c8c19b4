"""Recording at the control rate, on real LeRobot datasets: no encoding in the control loop (a slow writer
stand-in must not slow the loop; its backlog is written after the loop, no frame dropped), and timing integrity
(an episode taken off the dataset's rate is kept aside as rejected, not merged, unless asked)."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
import robots_crash_recorder as fake

from robot_common import collect as collect_mod
from robot_common import raw_episodes
from robot_common.camera_sync import Frames
from robot_common.collect import record_episodes
from robot_common.controls import Controls
from robot_common.controls import Progress
from robot_common.raw_episodes import RawEpisodeRecorder
from robot_common.recorder import EpisodeRecorder
from robot_common.recorder import recover
from robot_common.timing import CAPTURE_TIME
from robot_common.timing import capture_time_feature

FEATURES = {**fake.FEATURES, CAPTURE_TIME: capture_time_feature()}
SLOW_S = 0.06  # the encoder stand-in's time per frame: slower than the 33 ms period at 30 fps


class _Keys:
    """Key presses that become available once the leader has been called `n` times: [(n, key), ...]."""

    def __init__(self, script, counter):
        self.script, self.counter = list(script), counter

    def read(self, timeout):
        if self.script and self.script[0][0] <= self.counter["calls"]:
            return self.script.pop(0)[1]
        if timeout > 0 and not self.script:
            raise AssertionError(f"waiting for a key at call {self.counter['calls']} with none left")
        return None


class VirtualClock:
    """Stands in for the `time` module of the collection loop (and its camera grab): sleeping advances the clock
    at once, so an episode's timing is exactly what the test makes it, whatever else runs on the machine."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def sleep(self, s):
        self.now += max(0.0, s)

    def __getattr__(self, name):
        return getattr(time, name)

    def grab(self, cameras, **kw):
        frames = Frames({name: cam.read() for name, cam in cameras.items()})
        frames.timestamps, frames.skew = dict.fromkeys(cameras, self.now), 0.0
        return frames


@pytest.fixture
def clock(monkeypatch):
    c = VirtualClock()
    monkeypatch.setattr(collect_mod, "time", c)
    monkeypatch.setattr(collect_mod, "grab", c.grab)
    return c


def _record(recorder, counter, *, steps, fps=30, slow_calls=(), controls=None, out=None, clock=None, **kw):
    robot = fake.FakeRobot()
    leader = fake.make_leader(counter)

    def slow_leader(t):  # a step that stalls the loop (e.g. a slow USB read) at the given leader calls
        if counter["calls"] in slow_calls:
            (clock or time).sleep(2.5 / fps)
        return leader(t)

    return record_episodes(
        robot, {"base": fake.FakeCamera(robot)}, slow_leader, recorder, task="t", num_episodes=kw.pop("num", 1),
        episode_steps=steps, fps=fps, vectors=fake.vectors, image_keys={"base": "observation.images.base"},
        controls=controls or Controls("auto"), progress=Progress(out or io.StringIO(), live=False), **kw,
    )  # fmt: skip


def _load(root, repo_id):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id, root=root / repo_id, video_backend="torchcodec")


def _slow_writer(monkeypatch):
    """Every frame costs LeRobot's public `add_frame` SLOW_S (sleeping, like a real encoder that releases the GIL):
    with writer="streaming"/"threads" it runs in the recorder's writer thread, with "sync" in the control loop."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    orig = LeRobotDataset.add_frame

    def slow_add_frame(self, frame):
        time.sleep(SLOW_S)
        return orig(self, frame)

    monkeypatch.setattr(LeRobotDataset, "add_frame", slow_add_frame)


@pytest.mark.parametrize("writer", ["streaming", "threads"])
def test_a_slow_encoder_does_not_slow_the_loop_and_no_frame_is_dropped(tmp_path, monkeypatch, writer):
    _slow_writer(monkeypatch)
    rec = EpisodeRecorder(
        "enc", fps=30, features=FEATURES, robot_type="fake", root=tmp_path, writer=writer, image_writer_threads=1
    )
    # keep_off_rate: the episode is checked whatever the machine's load did to its rate (the rule has its own test)
    stats = _record(rec, {"episode": 0, "calls": 0}, steps=24, keep_off_rate=True)
    a = stats.attempts[-1]
    assert a.kept, a.timing
    # the loop's own work (median over the steps) stayed far below the encoder's 60 ms per frame: frames were queued
    assert a.timing.work_ms_p50 < 0.5e3 * SLOW_S, a.timing
    assert a.timing.writer_max_backlog >= 5 and a.timing.writer_blocked_steps == 0  # fell behind, never blocked
    ds = _load(tmp_path, "enc")
    assert len(ds) == 24  # the backlog was written after the loop: nothing dropped
    last = ds[23]["observation.images.base"].numpy()
    assert abs(last.mean() * 255 - 23 * 7) < 3  # the fake camera's last frame (value 7 t)
    t = np.stack([np.asarray(x) for x in ds.hf_dataset[CAPTURE_TIME]])
    assert t.shape == (24, 2) and t[0, 0] == 0 and np.all(np.diff(t[:, 1]) > 0)  # s since the first state read
    assert abs(np.median(np.diff(t[:, 1])) - 1 / 30) < 0.01
    timing = json.loads((tmp_path / "enc" / "meta" / "robot_common_timing.json").read_text())
    assert len(timing) == 1 and timing[0]["episode_index"] == 0 and timing[0]["frames"] == 24
    assert timing[0]["t0_monotonic"] == a.timing.t0_monotonic < time.monotonic()


def test_encoding_inside_the_loop_is_caught_and_backpressure_is_reported(tmp_path, monkeypatch):
    # the old path: PNGs written inside add_frame -> the loop is as slow as the encoder; the episode is rejected
    _slow_writer(monkeypatch)
    rec = EpisodeRecorder("sync", fps=30, features=FEATURES, robot_type="fake", root=tmp_path, writer="sync")
    stats = _record(rec, {"episode": 0, "calls": 0}, steps=8, max_rejected_in_a_row=1)
    a = stats.attempts[0]
    assert a.timing.work_ms_p50 >= 1e3 * SLOW_S and a.rejected and stats.episodes_kept == 0
    # a slow writer behind a full (tiny) queue makes the loop wait: reported, nothing dropped, rejected
    rec = EpisodeRecorder("bp", fps=30, features=FEATURES, robot_type="fake", root=tmp_path, queue_frames=2)
    stats = _record(rec, {"episode": 0, "calls": 0}, steps=12, max_rejected_in_a_row=1)
    a = stats.attempts[0]
    assert a.rejected and a.timing.writer_blocked_steps >= 5 and a.timing.writer_blocked_ms > 100, a.timing
    recover("bp", tmp_path, keep_off_rate=True)
    assert len(_load(tmp_path, "bp")) == 12


def test_off_rate_episodes_are_rejected_not_merged_and_the_controls_say_so(tmp_path, clock):
    counter = {"episode": 0, "calls": 0}
    # keys: episode 1 normal (kept); 2 stalls (rejected); d deletes that one (not episode 1); 3 stalls; quit
    script = [(0, "\n"), (10, "\n"), (20, "d"), (20, "\n"), (30, "q")]
    slow = {12, 15, 18, 22, 25, 28}
    out = io.StringIO()
    rec = EpisodeRecorder("rej", fps=20, features=FEATURES, robot_type="fake", root=tmp_path)
    stats = _record(rec, counter, steps=10, fps=20, slow_calls=slow, num=2, clock=clock,
                    controls=Controls("keys", _Keys(script, counter)), out=out)  # fmt: skip
    log = out.getvalue()
    assert [(a.kept, a.rejected) for a in stats.attempts] == [(True, False), (False, False), (False, True)], log
    assert "REJECTED, kept aside and not merged" in log and "was REJECTED for its timing" in log
    assert "d delete it" in log and "deleted the rejected episode" in log
    assert "kept 1 episodes (10 frames), REJECTED 1 for their timing" in log and "--keep-off-rate" in log
    assert stats.attempts[0].timing.achieved_fps == pytest.approx(20) and stats.attempts[0].timing.overrun_steps == 0
    assert stats.attempts[2].timing.overrun_steps == 3 and stats.attempts[2].timing.achieved_fps < 15
    assert _load(tmp_path, "rej").num_episodes == 1
    staged = sorted(p.name for p in (tmp_path / ".rej.staging").iterdir())
    assert len(staged) == 1 and staged[0].endswith(".rejected")  # the deleted one is gone, episode 3 kept aside
    # merged only when asked; its timing says why it was rejected
    recover("rej", tmp_path, keep_off_rate=True)
    ds = _load(tmp_path, "rej")
    assert ds.num_episodes == 2 and not (tmp_path / ".rej.staging").exists()
    t = np.stack([np.asarray(x) for x in ds.hf_dataset[CAPTURE_TIME]])
    np.testing.assert_allclose(t[:10, 1], np.arange(10) * 0.05, atol=1e-6)  # the kept episode: exactly 20 fps
    assert np.diff(t[10:, 1]).max() > 0.15  # the rejected one: the stalls are in its capture times
    np.testing.assert_array_equal(np.stack(ds.hf_dataset["action"])[10:, 0], np.arange(20, 30))
    timing = json.loads((tmp_path / "rej" / "meta" / "robot_common_timing.json").read_text())
    assert [e["episode_index"] for e in timing] == [0, 1] and not timing[0]["rejected"] and timing[1]["rejected"]
    # --keep-off-rate: an off-rate episode is merged at once, marked as kept anyway
    rec = EpisodeRecorder("rej", fps=20, features=FEATURES, robot_type="fake", root=tmp_path, resume=True)
    stats = _record(rec, counter, steps=10, fps=20, slow_calls={32, 35, 38}, keep_off_rate=True, clock=clock)
    assert stats.attempts[0].kept and stats.attempts[0].timing.kept_anyway
    assert _load(tmp_path, "rej").num_episodes == 3


def test_raw_episodes_off_rate_go_to_rejected_and_convert_only_when_asked(tmp_path):
    counter = {"episode": 0, "calls": 0}
    rec = RawEpisodeRecorder("raw", fps=20, features=FEATURES, robot_type="fake", root=tmp_path)
    stats = _record(rec, counter, steps=10, fps=20, slow_calls={2, 5, 8}, num=1, max_rejected_in_a_row=1)
    assert stats.attempts[0].rejected and stats.episodes_kept == 0
    raw = tmp_path / ".raw.raw"
    [f] = raw_episodes.episode_files(raw / "rejected")
    head = raw_episodes.read_header(f)
    assert head["timing"]["overrun_steps"] >= 3 and head["timing"]["rejected"]
    with np.load(f) as z:
        assert z[CAPTURE_TIME].shape == (10, 2) and z[CAPTURE_TIME].dtype == np.float64
    assert raw_episodes.convert(raw_episodes.ConvertArgs(repo_id="raw", root=tmp_path)) is None  # nothing else
    out = raw_episodes.convert(raw_episodes.ConvertArgs(repo_id="raw", root=tmp_path, keep_off_rate=True))
    assert len(_load(tmp_path, "raw")) == 10 and out == tmp_path / "raw"
    timing = json.loads((tmp_path / "raw" / "meta" / "robot_common_timing.json").read_text())
    assert timing[0]["rejected"] and timing[0]["kept_anyway"]
