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
def test_scripted_expert_transfers_the_cube_on_most_seeds(small_env):
    seeds = [0, 1, 2, 3]
    rewards = [generate.rollout_scripted_episode(small_env, s, 400)[3] for s in seeds]
    successes = sum(r >= 4 for r in rewards)
    print(f"scripted expert success: {successes}/{len(seeds)} rewards={rewards}")
    assert successes >= 3, rewards
