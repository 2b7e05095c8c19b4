"""The episode recorder uses LeRobot through its public API only, and no frame is lost silently.

A recording with every writer runs against a LeRobotDataset that fails on any private (`_`) attribute the
recorder's modules touch (the recorder must not read LeRobot's internals, e.g. its streaming encoder's queues); a
frame LeRobot's streaming encoder drops (it does when its queue stays full for 0.1 s), and a failing writer, are
reported and the episode is not staged."""

from __future__ import annotations

import ast
import pathlib
import sys
import time

import numpy as np
import pytest
import robots_crash_recorder as fake

import robot_common.frame_writer
import robot_common.recorder
from robot_common.recorder import EpisodeRecorder

RECORDER_MODULES = {robot_common.recorder.__name__, robot_common.frame_writer.__name__}


def _frame(i: int) -> dict:
    return {
        **fake.vectors(np.array([i, 0.0])),
        "observation.images.base": np.full((16, 16, 3), i * 7, np.uint8),
    }


@pytest.fixture
def guarded(monkeypatch):
    """LeRobotDataset (what the recorder creates) recording every private attribute the recorder's modules read;
    it raises an AssertionError, not an AttributeError, so that `getattr(ds, "_x", default)` cannot hide it."""
    import lerobot.datasets.lerobot_dataset as ld

    touched = []

    class GuardedDataset(ld.LeRobotDataset):
        def __getattribute__(self, name):
            if name.startswith("_") and name != "__class__":
                caller = sys._getframe(1).f_globals.get("__name__")
                if caller in RECORDER_MODULES:
                    touched.append((caller, name))
                    raise AssertionError(f"{caller} reads the private LeRobot attribute {name!r}")
            return super().__getattribute__(name)

    monkeypatch.setattr(ld, "LeRobotDataset", GuardedDataset)
    return touched


def _add_frames(rec, n: int, pause: float = 0.0) -> None:
    for i in range(n):
        rec.add_frame(_frame(i), "t")
        time.sleep(pause)


def _load(root, repo_id):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id, root=root / repo_id, video_backend="torchcodec")


@pytest.mark.parametrize("writer", ["streaming", "threads", "sync"])
def test_recording_touches_no_private_lerobot_attribute(tmp_path, guarded, writer):
    rec = EpisodeRecorder("pub", fps=30, features=fake.FEATURES, robot_type="fake", root=tmp_path, writer=writer)
    rec.start_episode()
    for i in range(5):
        rec.add_frame(_frame(i), "t")
        assert rec.backlog >= 0 and rec.writer_stats()["writer_blocked_steps"] == 0
    assert rec.save_episode() and rec.episodes == 1
    for i in range(3):  # dropped: its writer threads are stopped, nothing of it stays
        rec.add_frame(_frame(10 + i), "t")
    rec.discard_episode()
    rec.start_episode()  # opened, never written: dropped by close
    assert rec.close() == tmp_path / "pub"
    assert guarded == []
    ds = _load(tmp_path, "pub")
    assert len(ds) == 5 and ds.num_episodes == 1
    np.testing.assert_array_equal(np.stack(ds.hf_dataset["action"])[:, 0], np.arange(5))
    last = ds[4]["observation.images.base"].numpy()
    assert abs(last.mean() * 255 - 4 * 7) < 3
    assert not (tmp_path / ".pub.staging").exists()


def test_the_guard_catches_a_private_read(tmp_path, guarded):
    # the guard itself: what the recorder used to do (read the streaming encoder of the dataset)
    import lerobot.datasets.lerobot_dataset as ld

    ds = ld.LeRobotDataset.create("g", fps=30, features=fake.FEATURES, root=tmp_path / "g", vcodec="h264")
    namespace = {"__name__": robot_common.recorder.__name__, "ds": ds}
    with pytest.raises(AssertionError, match="_streaming_encoder"):
        exec('getattr(ds, "_streaming_encoder", None)', namespace)
    assert guarded == [(robot_common.recorder.__name__, "_streaming_encoder")]
    ds.finalize()


def test_the_sources_reach_into_no_private_attribute():
    """Statically: private attributes only on `self` (the recorder's own objects), no `getattr(x, "_name")`."""
    bad = []
    for mod in (robot_common.recorder, robot_common.frame_writer):
        path = pathlib.Path(mod.__file__)
        for node in ast.walk(ast.parse(path.read_text())):
            private = isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
            if private and not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                bad.append(f"{path.name}:{node.lineno} .{node.attr}")
            by_name = isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) > 1
            if by_name and node.func.id in ("getattr", "hasattr", "setattr", "delattr"):
                name = node.args[1]  # a constant public name only
                if not (isinstance(name, ast.Constant) and not str(name.value).startswith("_")):
                    bad.append(f"{path.name}:{node.lineno} {node.func.id}(..., {ast.unparse(name)})")
    assert bad == []


def test_a_frame_dropped_by_lerobot_or_a_failing_writer_is_reported_not_saved(tmp_path, monkeypatch):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.datasets.video_utils import StreamingVideoEncoder

    feed, fed = StreamingVideoEncoder.feed_frame, []

    def dropping_feed(self, video_key, image):  # what LeRobot does when its encoder queue stays full for 0.1 s
        fed.append(video_key)
        if len(fed) != 3:
            feed(self, video_key, image)

    monkeypatch.setattr(StreamingVideoEncoder, "feed_frame", dropping_feed)
    rec = EpisodeRecorder("drop", fps=30, features=fake.FEATURES, robot_type="fake", root=tmp_path)
    for i in range(6):
        rec.add_frame(_frame(i), "t")
    with pytest.raises(RuntimeError, match=r"dropped 1 frames of observation.images.base .*5 of 6.*not saved"):
        rec.save_episode()
    assert rec.episodes == 0 and rec.frames == 0 and not list((tmp_path / ".drop.staging").iterdir())
    monkeypatch.setattr(StreamingVideoEncoder, "feed_frame", feed)

    add, added = LeRobotDataset.add_frame, []

    def failing_add(self, frame):
        added.append(1)
        if len(added) == 2:
            raise OSError("disk full")
        add(self, frame)

    monkeypatch.setattr(LeRobotDataset, "add_frame", failing_add)
    for i in range(3):  # the writer thread fails on the 2nd frame: save_episode reports it
        rec.add_frame(_frame(i), "t")
    with pytest.raises(RuntimeError, match=r"episode writer failed: OSError\('disk full'\).*not saved"):
        rec.save_episode()
    added.clear()
    with pytest.raises(RuntimeError, match=r"episode writer failed: OSError\('disk full'\)"):
        _add_frames(rec, 500, pause=0.01)  # and so does the control loop's next add_frame once the thread failed
    assert 2 <= rec.frames < 500
    monkeypatch.setattr(LeRobotDataset, "add_frame", add)
    rec.discard_episode()
    for i in range(3):
        rec.add_frame(_frame(i), "t")
    assert rec.save_episode()  # the writer works again: 3 frames saved
    assert rec.close() == tmp_path / "drop" and len(_load(tmp_path, "drop")) == 3
