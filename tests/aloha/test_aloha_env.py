"""gym-aloha wrapper and scripted expert (real MuJoCo physics, headless EGL rendering)."""

import numpy as np
import pytest

from aloha_sim import env as aloha_env
from aloha_sim import generate
from aloha_sim import scripted


@pytest.fixture(scope="module")
def small_env():
    env = aloha_env.make_gym_env(max_episode_steps=401, image_hw=(48, 64))
    yield env
    env.close()


def test_observation_conversion_matches_upstream_client_format(small_env):
    obs, _ = small_env.reset(seed=3)
    assert obs["pixels"]["top"].shape == (48, 64, 3) and obs["pixels"]["top"].dtype == np.uint8
    assert obs["agent_pos"].shape == (14,)
    converted = aloha_env.convert_observation(obs)
    assert converted["state"].dtype == np.float32 and converted["state"].shape == (14,)
    img = converted["images"]["cam_high"]
    assert img.shape == (3, 224, 224) and img.dtype == np.uint8
    # 48x64 letterboxed into 224x224: rows at the top and bottom are black padding, the middle is the scene.
    assert img[:, :20].max() == 0 and img[:, -20:].max() == 0 and img[:, 112].max() > 0


def test_runtime_environment_contract():
    env = aloha_env.AlohaSimEnvironment(seed=0, max_episode_steps=5, prompt="Transfer cube")
    with pytest.raises(RuntimeError, match="reset"):
        env.get_observation()
    env.reset()
    obs = env.get_observation()
    assert obs["prompt"] == "Transfer cube" and obs["state"].shape == (14,)
    assert "env_state" not in obs  # only with privileged=True
    with pytest.raises(ValueError, match=r"shape \(14,\)"):
        env.apply_action({"actions": np.zeros(7)})
    for _ in range(5):
        assert not env.is_episode_complete()
        env.apply_action({"actions": obs["state"].astype(np.float64)})
    assert env.is_episode_complete()  # time limit reached
    assert env.last_frame.shape == (480, 640, 3)


def test_privileged_environment_reports_the_cube_pose():
    """obs["env_state"] = the cube's free joint (xyz + wxyz), the column `generate --privileged` records."""
    env = aloha_env.AlohaSimEnvironment(
        seed=0, max_episode_steps=2, privileged=True, image_hw=(48, 64), fast_render=True
    )
    env.reset()
    pose = env.get_observation()["env_state"]
    assert pose.shape == (7,) and pose.dtype == np.float32
    assert 0.0 <= pose[0] <= 0.2 and 0.4 <= pose[1] <= 0.6 and pose[2] == pytest.approx(0.05)  # sample_box_pose
    np.testing.assert_allclose(pose[3:], [1, 0, 0, 0], atol=1e-6)
    assert env.last_frame.shape == (48, 64, 3) and env.last_frame.std() > 0


def test_transfer_cube_expert_succeeds_where_the_open_loop_plan_failed():
    """Seeds 2, 10, 11 (cube near y = 0.4) failed with the open-loop plan (max reward 0, 2, 1). No rendering."""
    env = aloha_env.make_gym_env(max_episode_steps=401, image_hw=(48, 64), render=False)
    physics = env.unwrapped._env.physics
    rewards, held = [], []
    for seed in (2, 10, 11):
        states, actions, reward = scripted.rollout_transfer_cube(env, seed)
        assert states.shape == actions.shape == (400, 14) and np.isfinite(actions).all()
        # The redundant wrist does not drift: forearm_roll (joints 3 and 10) stays near 0 (it wandered to +-3.1 rad
        # before the null-space spring), so demonstrations are a function of the scene.
        roll = np.abs(actions[:, [3, 10]]).max()
        assert roll < 0.2, f"seed {seed}: forearm_roll reached {roll:.2f} rad"
        rewards.append(reward)
        held.append(scripted.held_by_left(physics))
    env.close()
    print(f"transfer-cube expert: max rewards {rewards}, cube held by the left gripper at the end {held}")
    assert all(r >= 4 for r in rewards), rewards
    assert sum(held) >= 2, held


@pytest.mark.slow
def test_generate_scripted_dataset_loads_in_lerobot(lerobot_home):
    """Two scripted episodes at 48x64 with the privileged cube pose -> a LeRobot v3 dataset that lerobot itself
    reads back (atomic rename)."""
    from gym_aloha.utils import sample_box_pose
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    args = generate.Args(
        repo_id="aloha_test",
        num_episodes=2,
        image_height=48,
        image_width=64,
        max_attempts_factor=3,
        privileged=True,
        fast_render=True,
    )
    report = generate.generate(args)
    print(
        f"scripted expert: {report.successes}/{report.attempts} kept, {report.seconds:.1f}s "
        f"(simulation {report.sim_seconds:.1f}s, rendering {report.render_seconds:.1f}s)"
    )
    assert report.episodes == 2 and report.successes == 2 and report.attempts <= 4
    assert report.root == lerobot_home / "aloha_test" and not (lerobot_home / ".aloha_test.partial").exists()
    ds = LeRobotDataset("aloha_test", root=report.root, video_backend="torchcodec")
    assert ds.num_episodes == 2 and ds.num_frames == 800 and ds.fps == 50
    assert ds.features["observation.environment_state"]["shape"] == (7,)
    item = ds[399]
    assert item["observation.images.top"].shape == (3, 48, 64)
    assert float(item["observation.images.top"].float().std()) > 0  # rendered, not the black placeholder
    assert item["observation.state"].shape == (14,) and item["action"].shape == (14,)
    assert item["task"] == "Transfer cube"
    # First frame: the cube where gym-aloha placed it (seed 0 is kept: the expert transfers it); last frame: lifted
    # by the left gripper.
    np.testing.assert_allclose(ds[0]["observation.environment_state"].numpy(), sample_box_pose(0), atol=1e-6)
    assert item["observation.environment_state"].shape == (7,) and item["observation.environment_state"][2] > 0.1
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate.generate(args)
