"""Piper and Flexiv clients on simulated arms: collection -> LeRobot dataset -> norm stats, and the policy
client against a real loopback policy server."""

import pathlib

import numpy as np
import pytest
from robots_dataset_check import loads_through

from openpi.serving.websocket_policy_server import serve_in_thread
from openpi_client import base_policy
from robot_common import rotations
from robot_common.cameras import CameraArgs

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def lerobot_env(tmp_path, monkeypatch):
    import lerobot.datasets.lerobot_dataset as ld
    import lerobot.utils.constants as lc

    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path))
    monkeypatch.setattr(lc, "HF_LEROBOT_HOME", tmp_path)
    if hasattr(ld, "HF_LEROBOT_HOME"):
        monkeypatch.setattr(ld, "HF_LEROBOT_HOME", tmp_path)
    return tmp_path


def test_piper_collect_writes_a_dataset_the_training_config_reads(lerobot_env, openpi_data_home):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from robot_piper import collect

    n = collect.main(
        collect.Args(
            repo_id="piper_test",
            num_episodes=2,
            episode_steps=12,
            sim=True,
            cameras=CameraArgs(height=32, width=32),
            keep_off_rate=True,  # about the data, not the clock (test_robots_recording_rate.py): a loaded CI may jitter
        )
    )
    assert n == 2 and not (lerobot_env / ".piper_test.partial").exists()
    ds = LeRobotDataset("piper_test", root=lerobot_env / "piper_test", video_backend="torchcodec")
    assert ds.num_episodes == 2 and ds.num_frames == 24 and ds.fps == 30
    item = ds[5]
    assert item["observation.state"].shape == (7,) and item["action"].shape == (7,)
    assert item["observation.images.wrist"].shape == (3, 32, 32) and item["task"] == "pick up the cube"
    assert item["capture_time"].shape == (2,) and float(ds[6]["capture_time"][1] - item["capture_time"][1]) > 0
    # Norm stats (7-d state, all 24 frames) and the first training batch of the Piper config.
    assert loads_through("pi05_piper_pick_cube", "piper_test", lerobot_env, 7, ds[0]["observation.state"].numpy()) == 24
    with pytest.raises(FileExistsError, match="--overwrite"):
        collect.main(collect.Args(repo_id="piper_test", num_episodes=1, episode_steps=2, sim=True))


class TowardTarget(base_policy.BasePolicy):
    """Returns a 10-step chunk from the current state toward a far target (the client must clip it)."""

    def __init__(self, target):
        self.target = np.asarray(target, np.float32)
        self.calls = 0

    def infer(self, obs):
        self.calls += 1
        state = np.asarray(obs["observation/state"], np.float32)
        assert obs["observation/images/base"].shape == (224, 224, 3) and obs["prompt"] == "pick up the cube"
        return {"actions": np.linspace(state, self.target, 11, dtype=np.float32)[1:]}


def test_piper_policy_client_with_safety_clipping():
    from robot_piper import run
    from robot_piper.limits import HOME
    from robot_piper.limits import MAX_STEP

    target = HOME + np.array([5.0, 0, 0, 0, 0, 0, 0])  # far outside the joint limit
    policy = TowardTarget(target)
    with serve_in_thread(policy, metadata={"action_horizon": 5}) as (_, port):
        env = run.main(run.Args(port=port, sim=True, max_steps=20, control_hz=200, chunking="sync"))
    sent = np.stack(env.sent)
    assert len(sent) == 20 and policy.calls == 4  # 5 actions executed per chunk (server metadata)
    assert np.all(np.abs(np.diff(sent[:, 0])) <= MAX_STEP[0] + 1e-6)
    # the simulated arm moves at most pi/2 rad/s (50 % speed), so the commands advance with it, never past the limit
    assert sent[:, 0].max() <= 2.6179 + 1e-6 and sent[-1, 0] > HOME[0] + 0.3


def test_rotation6d_and_sim_kinematics_roundtrip():
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        pose7 = np.r_[rng.normal(size=3), q if q[0] >= 0 else -q]
        np.testing.assert_allclose(rotations.pose9_to_pose7(rotations.pose7_to_pose9(pose7)), pose7, atol=1e-9)
    from robot_flexiv import kinematics

    q = kinematics.HOME + 0.1
    p, r = kinematics.fk(q)
    q2 = kinematics.ik(p + np.array([0.02, 0.0, -0.01]), r, kinematics.HOME)
    p2, r2 = kinematics.fk(q2)
    np.testing.assert_allclose(p2, p + np.array([0.02, 0.0, -0.01]), atol=1e-4)
    np.testing.assert_allclose(r2, r, atol=1e-3)


def test_flexiv_collect_records_both_spaces_consistently(lerobot_env, openpi_data_home):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from robot_flexiv import collect
    from robot_flexiv import kinematics

    assert (
        collect.main(
            collect.Args(
                repo_id="flexiv_test",
                num_episodes=1,
                episode_steps=10,
                sim=True,
                cameras=CameraArgs(height=32, width=32),
                keep_off_rate=True,
            )
        )
        == 1
    )
    ds = LeRobotDataset("flexiv_test", root=lerobot_env / "flexiv_test", video_backend="torchcodec")
    item = ds[3]
    assert item["observation.state.qpos"].shape == (8,) and item["observation.state.pose"].shape == (10,)
    q = item["action.qpos"].numpy()
    p, r = kinematics.fk(q[:7])
    np.testing.assert_allclose(item["action.pose"].numpy()[:9], np.r_[p, r[:, 0], r[:, 1]], atol=1e-5)
    # The same episode trains either config; each gets its own norm stats (7-axis arm: recomputed, never reused).
    first = ds[0]
    for config_name, key, dim in (
        ("pi05_flexiv_qpos_train", "observation.state.qpos", 8),
        ("pi05_flexiv_pose_train", "observation.state.pose", 10),
    ):
        frames = loads_through(config_name, "flexiv_test", lerobot_env, dim, first[key].numpy())
        assert frames == 10


@pytest.mark.parametrize("mode", ["pose", "qpos"])
def test_flexiv_policy_client_holds_position_with_an_echo_policy(mode):
    from robot_flexiv import run

    class Hold(base_policy.BasePolicy):
        def infer(self, obs):
            s = np.asarray(obs["observation/state"], np.float32)
            assert s.shape == ({"pose": 10, "qpos": 8}[mode],)
            return {"actions": np.tile(s, (8, 1))}

    with serve_in_thread(Hold(), metadata={"action_horizon": 4}) as (_, port):
        env = run.main(run.Args(mode=mode, port=port, sim=True, max_steps=8, control_hz=200, chunking="sync"))
    sent = np.stack(env.sent)
    assert sent.shape == (8, {"pose": 10, "qpos": 8}[mode])
    np.testing.assert_allclose(sent, sent[0][None].repeat(8, 0), atol=2e-3)


def test_piper_sdk_units_and_api():
    from piper_sdk import C_PiperInterface_V2

    from robot_piper.driver import rad_to_sdk
    from robot_piper.driver import sdk_to_rad

    q = np.array([0.1, 1.0, -0.5, 0.2, -0.3, 1.5, 0.04])
    cmd = rad_to_sdk(q)
    assert cmd[1] == round(np.degrees(1.0) * 1000) and cmd[6] == 40000
    np.testing.assert_allclose(sdk_to_rad(cmd[:6], cmd[6]), q, atol=1e-5)
    for name in (
        "ConnectPort",
        "EnablePiper",
        "MotionCtrl_2",
        "JointCtrl",
        "GripperCtrl",
        "GetArmJointMsgs",
        "GetArmGripperMsgs",
        "GetArmJointCtrl",
        "GetArmGripperCtrl",
        "DisconnectPort",
    ):
        assert hasattr(C_PiperInterface_V2, name), name
