"""The pixel tier's training-only cube target (`pi0_aloha_sim_small_cube_target`): the dataset's cube pose over the
action chunk is appended to the actions, and the served policy neither needs nor returns it."""

import dataclasses

import numpy as np
import pytest

from openpi.policies.aloha_policy import AlohaInputs
from openpi.policies.aloha_policy import AlohaOutputs
from openpi.training import config as _config
from openpi.training import data_loader

H = 50


def _sample(with_target: bool = True) -> dict:
    rng = np.random.default_rng(0)
    data = {
        "images": {"cam_high": rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)},
        "state": rng.normal(size=14).astype(np.float32),
        "actions": rng.normal(size=(H, 14)).astype(np.float32),
    }
    if with_target:
        data["env_state"] = rng.normal(size=(H, 7)).astype(np.float32)
    return data


def test_target_is_appended_to_the_actions_and_dropped_on_output():
    data = _sample()
    out = AlohaInputs(adapt_to_pi=False, env_state_target_dim=7)(data)
    assert out["actions"].shape == (H, 21)
    np.testing.assert_array_equal(out["actions"][:, :14], data["actions"])
    np.testing.assert_array_equal(out["actions"][:, 14:], data["env_state"])
    assert out["state"].shape == (14,)  # the cube pose is a target, never an input
    served = AlohaOutputs(adapt_to_pi=False)({"actions": np.pad(out["actions"], ((0, 0), (0, 11)))})
    np.testing.assert_array_equal(served["actions"], data["actions"])


def test_serving_needs_no_env_state():
    data = _sample(with_target=False)
    del data["actions"]
    out = AlohaInputs(adapt_to_pi=False, env_state_target_dim=7)(data)
    assert "actions" not in out and out["state"].shape == (14,)


def test_missing_or_misshaped_target_is_named():
    data = _sample(with_target=False)
    with pytest.raises(KeyError, match="env_state"):
        AlohaInputs(adapt_to_pi=False, env_state_target_dim=7)(data)
    data["env_state"] = np.zeros(7, np.float32)  # the current pose only, not a sequence
    with pytest.raises(ValueError, match=r"action_sequence_keys"):
        AlohaInputs(adapt_to_pi=False, env_state_target_dim=7)(data)


def test_privileged_input_and_target_are_exclusive():
    cfg = _config.get_config("pi0_aloha_sim_small_cube_target")
    data = dataclasses.replace(cfg.data, env_state_dim=7)
    with pytest.raises(ValueError, match="exclusive"):
        data.create(cfg.assets_dirs, cfg.model)


def test_config_requests_the_cube_pose_as_a_sequence_with_own_stats():
    cfg = _config.get_config("pi0_aloha_sim_small_cube_target")
    dc = cfg.data.create(cfg.assets_dirs, cfg.model)
    assert tuple(dc.action_sequence_keys) == ("action", "observation.environment_state")
    # Its own 200-demo dataset and its own stats (21 action dims), apart from the other tiers' 60-demo dataset.
    assert dc.repo_id == "aloha_sim_transfer_small_200" and dc.asset_id == "aloha_sim_transfer_small_200_cube_target"
    assert cfg.data.env_state_dim == 0  # served without the privileged input
    pixels = _config.get_config("pi0_aloha_sim_small")
    assert cfg.model == pixels.model  # the same network as the pixel tier: only the training target differs


@pytest.mark.slow
@pytest.mark.parametrize("frame_cache", [False, True])
def test_training_samples_carry_the_cube_trajectory(lerobot_home, tmp_path, monkeypatch, frame_cache):
    """Real scripted episodes -> the config's LeRobot (or frame-cache) dataset -> repack + data transforms: actions
    [H, 21] whose last 7 dims are the recorded cube pose over the chunk, clamped at the episode end like the joints."""
    from aloha_sim import generate

    monkeypatch.setenv("OPENPI_DATA_HOME", str(tmp_path / "cache"))
    small = dict(image_height=48, image_width=64, privileged=True, fast_render=True)
    generate.generate(generate.Args(repo_id="cube_target_test", num_episodes=1, **small))
    cfg = _config.get_config("pi0_aloha_sim_small_cube_target")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, repo_id="cube_target_test"))
    dc = cfg.data.create(cfg.assets_dirs, cfg.model)
    raw = data_loader.create_torch_dataset(dc, H, cfg.model, frame_cache=frame_cache)
    n = len(raw)
    poses = np.stack([np.asarray(raw[i]["observation.environment_state"]).reshape(-1, 7)[0] for i in range(n)])
    for index in (0, n - 10):
        sample = raw[index]
        for t in [*dc.repack_transforms.inputs, *dc.data_transforms.inputs]:
            sample = t(sample)
        assert sample["actions"].shape == (H, 21)
        rows = np.minimum(np.arange(index, index + H), n - 1)
        np.testing.assert_allclose(sample["actions"][:, 14:], poses[rows], atol=1e-6)


def test_sim_benchmark_refuses_rtc_for_the_cube_target_tier(repo_root, tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "scripts/sim_benchmark.py", "--tier", "pixels-cube-target", "--rtc"]
    r = subprocess.run([*cmd, "--datasets-dir", str(tmp_path)], cwd=repo_root, capture_output=True, text=True)
    assert r.returncode == 1 and "--rtc-executors sync naive ensemble" in r.stderr
    assert not list(tmp_path.iterdir())  # stopped before generating anything


def test_medium_vision_lever_changes_only_the_vision_tower_and_steps():
    base = _config.get_config("pi0_aloha_sim_small_cube_target")
    medium = _config.get_config("pi0_aloha_sim_cube_target_medium_vision")
    assert medium.data == base.data
    assert dataclasses.replace(medium.model, vision_variant=base.model.vision_variant) == base.model
    assert medium.model.vision_variant == "medium_conv"
    assert medium.num_train_steps == medium.lr_schedule.decay_steps == 6000
