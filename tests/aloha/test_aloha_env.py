"""gym-aloha wrapper and scripted expert (real MuJoCo physics, headless EGL rendering)."""

import numpy as np
import pytest

from aloha_sim import env as aloha_env
from aloha_sim import generate


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
    with pytest.raises(ValueError, match=r"shape \(14,\)"):
        env.apply_action({"actions": np.zeros(7)})
    for _ in range(5):
        assert not env.is_episode_complete()
        env.apply_action({"actions": obs["state"].astype(np.float64)})
    assert env.is_episode_complete()  # time limit reached
    assert env.last_frame.shape == (480, 640, 3)


@pytest.mark.slow
def test_generate_scripted_dataset_loads_in_lerobot(lerobot_home):
    """Two scripted episodes at 48x64 -> a LeRobot v3 dataset that lerobot itself reads back (atomic rename)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    args = generate.Args(repo_id="aloha_test", num_episodes=2, image_height=48, image_width=64, max_attempts_factor=2)
    report = generate.generate(args)
    print(f"scripted expert: {report.successes}/{report.attempts} successes, {report.seconds:.1f}s")
    assert report.episodes == 2 and report.successes >= 2 and report.attempts <= 3
    assert report.root == lerobot_home / "aloha_test" and not (lerobot_home / ".aloha_test.partial").exists()
    ds = LeRobotDataset("aloha_test", root=report.root, video_backend="torchcodec")
    assert ds.num_episodes == 2 and ds.num_frames == 800 and ds.fps == 50
    item = ds[399]
    assert item["observation.images.top"].shape == (3, 48, 64)
    assert item["observation.state"].shape == (14,) and item["action"].shape == (14,)
    assert item["task"] == "Transfer cube"
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate.generate(args)
