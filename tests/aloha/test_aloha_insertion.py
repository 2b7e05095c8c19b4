"""Scripted insertion expert on gym-aloha's joint-space AlohaInsertion-v0 (real MuJoCo physics)."""

import numpy as np
import pytest

from aloha_sim import env as aloha_env
from aloha_sim import generate
from aloha_sim import scripted_insertion


@pytest.fixture(scope="module")
def insertion_env():
    # No rendering: the expert reads the physics state, and software rendering costs ~0.1 s a frame.
    env = aloha_env.make_gym_env("gym_aloha/AlohaInsertion-v0", max_episode_steps=401, image_hw=(48, 64), render=False)
    yield env
    env.close()


def test_insertion_expert_inserts_the_peg_on_most_seeds(insertion_env):
    """Reward 4 = the peg touches the pin inside the socket (gym-aloha's own reward)."""
    rewards = []
    physics = insertion_env.unwrapped._env.physics
    for seed in (3, 4, 5):
        _, states, actions, reward = scripted_insertion.rollout_insertion(insertion_env, seed, render=False)
        assert states.shape == actions.shape == (400, 14) and np.isfinite(actions).all()
        rewards.append(reward)
        if reward >= 4:  # the peg tip ends inside the socket, past its opening
            mouth, axis = scripted_insertion.socket_mouth(physics)
            assert (scripted_insertion.peg_tip(physics) - mouth) @ axis < 0.0, seed
    print(f"insertion expert max rewards: {rewards}")
    assert sum(r >= 4 for r in rewards) >= 2, rewards


def test_generate_resolves_insertion_task_and_rejects_unknown():
    assert generate.resolve_task("insertion") == "gym_aloha/AlohaInsertion-v0"
    assert generate.resolve_task("gym_aloha/AlohaTransferCube-v0") == "gym_aloha/AlohaTransferCube-v0"
    with pytest.raises(ValueError, match="insertion"):
        generate.resolve_task("stack_blocks")


@pytest.mark.slow
def test_generate_insertion_dataset_loads_in_lerobot(lerobot_home):
    """One rendered insertion episode at 48x64 -> a LeRobot dataset lerobot reads back, with the insertion prompt."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    args = generate.Args(
        task="insertion", num_episodes=1, seed=3, image_height=48, image_width=64, max_attempts_factor=2
    )
    report = generate.generate(args)
    assert report.root == lerobot_home / "aloha_sim_insertion_scripted" and report.successes >= 1
    ds = LeRobotDataset("aloha_sim_insertion_scripted", root=report.root, video_backend="torchcodec")
    assert ds.num_episodes == 1 and ds.num_frames == 400
    item = ds[350]
    assert item["observation.images.top"].shape == (3, 48, 64)
    assert item["task"] == "Insert the peg"
    assert float(item["observation.images.top"].float().std()) > 0  # rendered, not the black placeholder
