"""Flexiv collection without lerobot: numpy-only raw episodes (one atomic .npz each) recorded where lerobot is
missing (.venv-flexiv), converted into the LeRobot dataset in the main venv, and read by both Flexiv configs."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
import robots_crash_recorder as fake
from robots_dataset_check import loads_through

from robot_common import raw_episodes
from robot_common.cameras import CameraArgs
from robot_common.collect import record_episodes
from robot_common.controls import Controls
from robot_common.controls import Progress
from robot_common.raw_episodes import ConvertArgs
from robot_common.raw_episodes import RawEpisodeRecorder
from robot_common.recorder import UnmergedEpisodesError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
FLEXIV_PY = REPO_ROOT / ".venv-flexiv" / "bin" / "python"


@pytest.fixture
def home(tmp_path, monkeypatch):
    import lerobot.datasets.lerobot_dataset as ld
    import lerobot.utils.constants as lc

    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path))
    monkeypatch.setattr(lc, "HF_LEROBOT_HOME", tmp_path)
    if hasattr(ld, "HF_LEROBOT_HOME"):
        monkeypatch.setattr(ld, "HF_LEROBOT_HOME", tmp_path)
    return tmp_path


def _dataset(root, repo_id):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id, root=root / repo_id, video_backend="torchcodec")


def _column(ds, key):
    return np.stack([np.asarray(a) for a in ds.hf_dataset[key]])


def _pool(img):
    h, w = img.shape[0] // 4 * 4, img.shape[1] // 4 * 4
    return np.asarray(img, np.float32)[:h, :w].reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3))


def _check_converted(ds, npz_files):
    """The dataset holds exactly the raw episodes, in order: vectors bit-exact, images within video loss."""
    eps = [np.load(f) for f in npz_files]
    assert [int(x) for x in ds.meta.episodes["length"]] == [len(z["task"]) for z in eps]
    for key in ("observation.state.qpos", "action.qpos", "observation.state.pose", "action.pose"):
        np.testing.assert_array_equal(_column(ds, key), np.concatenate([z[key] for z in eps]))
    last = ds[len(ds) - 1]
    for key in ("observation.images.base", "observation.images.wrist"):
        img, want = last[key].numpy().transpose(1, 2, 0) * 255.0, eps[-1][key][-1]  # CHW float in [0, 1] -> HWC
        assert np.abs(_pool(img) - _pool(want)).mean() < 5.0, key  # h264 keeps 4x4 block means of the sim's noise
        np.testing.assert_allclose(_square(img), _square(want), atol=1.0, err_msg=key)  # the arm's marker
    assert ds[0]["task"] == str(eps[0]["task"][0])


def _square(img):
    """Centre of the sim camera's red 20x20 marker (it moves with the arm)."""
    img = np.asarray(img, np.float32)
    ys, xs = np.nonzero(img[..., 0] - img[..., 1] > 100)
    assert len(ys) > 100
    return ys.mean(), xs.mean()


def test_flexiv_raw_collection_converts_into_a_dataset_both_configs_train_on(home, openpi_data_home, monkeypatch):
    from robot_flexiv import collect
    from robot_flexiv.sim import scripted_leader_qpos

    recorded = []  # every frame handed to the recorder, as the loop built it
    add_frame = RawEpisodeRecorder.add_frame

    def spy(self, frame, task):
        recorded.append({k: np.array(v, copy=True) for k, v in frame.items()})
        add_frame(self, frame, task)

    monkeypatch.setattr(RawEpisodeRecorder, "add_frame", spy)
    args = collect.Args(
        repo_id="fx_raw",
        num_episodes=2,
        episode_steps=9,
        sim=True,
        format="raw",
        cameras=CameraArgs(height=32, width=48),
        keep_off_rate=True,  # about the data, not the clock (test_robots_recording_rate.py)
    )
    assert collect.main(args) == 2
    raw = home / ".fx_raw.raw"
    files = sorted(raw.glob("*.npz"))
    assert [f.name for f in files] == ["episode_000000.npz", "episode_000001.npz"]
    assert not list(raw.glob(".*.tmp")) and not (home / "fx_raw").exists()  # nothing converted yet
    for i, f in enumerate(files):
        with np.load(f, allow_pickle=False) as z:
            assert int(z["fps"]) == 20 and str(z["robot_type"]) == "flexiv_rizon"
            assert json.loads(str(z["features"]))["observation.images.base"]["shape"] == [32, 48, 3]
            assert (
                z["observation.images.wrist"].shape == (9, 32, 48, 3)
                and z["observation.images.wrist"].dtype == np.uint8
            )
            assert z["observation.state.qpos"].shape == (9, 8) and z["action.pose"].dtype == np.float32
            assert list(z["task"]) == ["pick up the cube"] * 9
            for t in range(9):
                for k, v in recorded[9 * i + t].items():
                    np.testing.assert_array_equal(z[k][t], v.astype(z[k].dtype), err_msg=k)
            # the scripted leader restarts every episode: action[t] = leader(t)
            np.testing.assert_allclose(z["action.qpos"], [scripted_leader_qpos()(t) for t in range(9)], atol=1e-6)

    # A second session without --resume refuses (never mixes sessions silently); with it, records after them.
    with pytest.raises(FileExistsError, match="--resume"):
        collect.main(dataclasses.replace(args, num_episodes=1))
    assert collect.main(dataclasses.replace(args, num_episodes=1, episode_steps=4, resume=True)) == 1
    files = sorted(raw.glob("*.npz"))
    assert files[-1].name == "episode_000002.npz"

    out = raw_episodes.convert(ConvertArgs(repo_id="fx_raw"))
    assert out == home / "fx_raw"
    assert not list(raw.glob("*.npz")) and len(list((raw / "converted").glob("*.npz"))) == 3
    ds = _dataset(home, "fx_raw")
    assert ds.num_episodes == 3 and ds.num_frames == 22 and ds.fps == 20
    _check_converted(ds, sorted((raw / "converted").glob("*.npz")))
    assert raw_episodes.convert(ConvertArgs(repo_id="fx_raw")) is None  # idempotent: nothing left to convert

    first = ds[0]
    for config_name, key, dim in (
        ("pi05_flexiv_qpos_train", "observation.state.qpos", 8),
        ("pi05_flexiv_pose_train", "observation.state.pose", 10),
    ):
        assert loads_through(config_name, "fx_raw", home, dim, first[key].numpy()) == 22


def test_flexiv_collect_in_the_flexiv_venv_picks_raw_and_converts_in_the_main_venv(home):
    if not FLEXIV_PY.exists():
        pytest.skip(".venv-flexiv not built (no Python 3.12/3.10 on this machine): nothing to run the client in")
    cmd = [str(FLEXIV_PY), "-m", "robot_flexiv.collect", "--sim", "--format", "auto", "--repo-id", "fx_cross",
           "--num-episodes", "2", "--episode-steps", "6", "--cameras.height", "32", "--cameras.width", "48",
           "--keep-off-rate"]  # fmt: skip
    env = {**os.environ, "HF_LEROBOT_HOME": str(home)}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=home)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "lerobot is not installed in this Python" in r.stderr and "robot_common.raw_episodes" in r.stderr
    assert "convert them into the LeRobot dataset" in r.stdout
    raw = home / ".fx_cross.raw"
    assert sorted(f.name for f in raw.glob("*.npz")) == ["episode_000000.npz", "episode_000001.npz"]
    assert not (home / "fx_cross").exists()
    # Forcing the LeRobot format where lerobot is missing fails at start, naming the way out.
    r = subprocess.run(
        [*cmd[:4], "--format", "lerobot", *cmd[6:]], capture_output=True, text=True, timeout=120, env=env
    )
    assert r.returncode != 0 and "--format raw" in r.stderr

    # The documented conversion: the make target, in the main venv.
    r = subprocess.run(["make", "-s", "flexiv-convert", "REPO=fx_cross"], capture_output=True, text=True,
                       timeout=300, env=env, cwd=REPO_ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"converted 2 episodes (12 frames) into {home / 'fx_cross'}" in r.stdout
    ds = _dataset(home, "fx_cross")
    assert ds.num_episodes == 2 and ds.num_frames == 12
    _check_converted(ds, sorted((raw / "converted").glob("*.npz")))
    item = ds[7]
    assert item["observation.state.pose"].shape == (10,) and item["observation.images.base"].shape == (3, 32, 48)


FEATS = fake.FEATURES


def _record(root, counter, n, *, repo_id="crash", **kw):
    robot = fake.FakeRobot()
    rec = RawEpisodeRecorder(repo_id, fps=30, features=FEATS, robot_type="fake", root=root, **kw)
    return record_episodes(
        robot,
        {"base": fake.FakeCamera(robot)},
        fake.make_leader(counter),
        rec,
        task="t",
        num_episodes=n,
        episode_steps=5,
        fps=30,
        vectors=fake.vectors,
        image_keys={"base": "observation.images.base"},
        realtime=False,
        controls=Controls("auto"),
        progress=Progress(io.StringIO(), live=False),
    )


def test_partial_writes_are_skipped_and_an_interrupted_conversion_never_duplicates(tmp_path, monkeypatch, capsys):
    counter = {"episode": 0, "calls": 0}
    assert _record(tmp_path, counter, 2).episodes_kept == 2
    raw = tmp_path / ".crash.raw"
    good = sorted(raw.glob("*.npz"))
    # A crash while episode 2 was being written: its temp file holds only the first half of the bytes.
    partial = raw / ".episode_000002.npz.tmp"
    partial.write_bytes(good[0].read_bytes()[: good[0].stat().st_size // 2])
    # The next session reports it and never reuses its number.
    assert _record(tmp_path, counter, 1, resume=True).episodes_kept == 1
    assert sorted(f.name for f in raw.glob("*.npz"))[-1] == "episode_000003.npz"
    with pytest.raises(ValueError, match="not a readable raw episode"):
        raw_episodes.read_header(partial)

    # Conversion dies after staging the 2nd episode, before moving its raw file (the worst moment).
    moves = []
    real_move = raw_episodes._move_converted

    def crashing_move(src):
        if len(moves) == 1:
            raise KeyboardInterrupt("simulated crash")
        moves.append(src.name)
        real_move(src)

    monkeypatch.setattr(raw_episodes, "_move_converted", crashing_move)
    with pytest.raises(KeyboardInterrupt):
        raw_episodes.convert(ConvertArgs(repo_id="crash", root=tmp_path))
    monkeypatch.setattr(raw_episodes, "_move_converted", real_move)
    assert len(list((tmp_path / ".crash.staging").iterdir())) == 2 and (raw / raw_episodes.JOURNAL).exists()
    assert (raw / "episode_000001.npz").exists()  # staged, not yet marked converted

    capsys.readouterr()
    with pytest.raises(UnmergedEpisodesError, match="--resume"):
        raw_episodes.convert(ConvertArgs(repo_id="crash", root=tmp_path))
    out = raw_episodes.convert(ConvertArgs(repo_id="crash", root=tmp_path, resume=True))
    assert "skipped the partly written" in capsys.readouterr().out and partial.exists()
    assert not (raw / raw_episodes.JOURNAL).exists() and not (tmp_path / ".crash.staging").exists()
    assert sorted(f.name for f in (raw / "converted").glob("*.npz")) == [
        "episode_000000.npz",
        "episode_000001.npz",
        "episode_000003.npz",
    ]
    ds = _dataset(tmp_path, "crash")
    assert out == tmp_path / "crash" and ds.num_episodes == 3  # each raw episode exactly once, in order
    actions = _column(ds, "action")
    expected = np.concatenate([np.load(raw / "converted" / f"episode_{i:06d}.npz")["action"] for i in (0, 1, 3)])
    np.testing.assert_array_equal(actions, expected)
    assert actions[:, 0].tolist() == sorted(actions[:, 0].tolist())  # leader call numbers: recording order


def test_raw_recorder_overwrite_discard_and_bad_frames(tmp_path):
    counter = {"episode": 0, "calls": 0}
    _record(tmp_path, counter, 2)
    raw = tmp_path / ".crash.raw"
    rec = RawEpisodeRecorder("crash", fps=30, features=FEATS, robot_type="fake", root=tmp_path, overwrite=True)
    aside = list((raw / "overwritten").glob("*/*.npz"))
    assert len(aside) == 2 and not list(raw.glob("*.npz"))  # moved aside, never deleted
    frame = fake.vectors(np.zeros(2)) | {"observation.images.base": np.zeros((16, 16, 3), np.uint8)}
    with pytest.raises(ValueError, match="observation.images.base"):
        rec.add_frame(frame | {"observation.images.base": np.zeros((8, 16, 3), np.uint8)}, "t")
    with pytest.raises(TypeError, match="uint8"):
        rec.add_frame(frame | {"observation.images.base": np.zeros((16, 16, 3), np.float32)}, "t")
    with pytest.raises(KeyError, match="action"):
        rec.add_frame({k: v for k, v in frame.items() if k != "action"}, "t")
    assert not rec.save_episode()  # no frames
    rec.add_frame(frame, "t")
    assert rec.save_episode() and rec.episodes == 1 and rec.discard_last() and rec.episodes == 0
    assert rec.close() is None and not list(raw.glob("*.npz"))
    shutil.rmtree(raw / "overwritten")
    _record(tmp_path, counter, 1)
    with pytest.raises(ValueError, match="--fps"):
        RawEpisodeRecorder("crash", fps=15, features=FEATS, robot_type="fake", root=tmp_path, resume=True)
    with pytest.raises(ValueError, match="--format"):
        raw_episodes.open_recorder("parquet", "crash", fps=30, features=FEATS, robot_type="fake", root=tmp_path)
