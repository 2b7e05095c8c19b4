"""Robot LeRobot datasets -> norm stats (fast parquet path == full pipeline) -> data loader batches."""

import dataclasses
import pathlib

import numpy as np
import pytest

from openpi.training import config as _config
from openpi.training import data_loader
from openpi.training import norm_stats as cns


def _make_piper_dataset(root_home: pathlib.Path, repo_id: str, episodes=(12, 9)) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    feats = {
        "observation.images.base": {"dtype": "video", "shape": (16, 16, 3), "names": ["height", "width", "channel"]},
        "observation.images.wrist": {"dtype": "video", "shape": (16, 16, 3), "names": ["height", "width", "channel"]},
        "observation.state": {"dtype": "float32", "shape": (7,), "names": None},
        "action": {"dtype": "float32", "shape": (7,), "names": None},
    }
    ds = LeRobotDataset.create(
        repo_id, fps=30, features=feats, root=root_home / repo_id, robot_type="piper", use_videos=True, vcodec="h264"
    )
    rng = np.random.default_rng(0)
    for ep, length in enumerate(episodes):
        for t in range(length):
            state = (np.sin(np.arange(7) + 0.3 * t + ep) * 0.5).astype(np.float32)
            ds.add_frame(
                {
                    "observation.images.base": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                    "observation.images.wrist": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                    "observation.state": state,
                    "action": state + 0.1 * t,
                    "task": f"pick up the cube {ep}",
                }
            )
        ds.save_episode()
    ds.finalize()


@pytest.fixture(scope="module")
def piper_config(tmp_path_factory, golden_dir):
    import os

    home = tmp_path_factory.mktemp("lerobot")
    old = os.environ.get("HF_LEROBOT_HOME")
    os.environ["HF_LEROBOT_HOME"] = str(home)
    import lerobot.datasets.lerobot_dataset as ld
    import lerobot.utils.constants as lc

    saved = (lc.HF_LEROBOT_HOME, getattr(ld, "HF_LEROBOT_HOME", None))
    lc.HF_LEROBOT_HOME = home
    if saved[1] is not None:
        ld.HF_LEROBOT_HOME = home
    _make_piper_dataset(home, "piper_test")
    base = _config.get_config("pi05_piper_pick_cube")
    cfg = dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, repo_id="piper_test"),
        model=dataclasses.replace(base.model, action_horizon=4),
        assets_base_dir=str(tmp_path_factory.mktemp("assets")),
        batch_size=4,
        num_workers=0,
    )
    yield cfg
    lc.HF_LEROBOT_HOME = saved[0]
    if saved[1] is not None:
        ld.HF_LEROBOT_HOME = saved[1]
    if old is None:
        os.environ.pop("HF_LEROBOT_HOME", None)
    else:
        os.environ["HF_LEROBOT_HOME"] = old


def test_fast_norm_stats_equal_the_full_pipeline(piper_config):
    dc, fast, n = cns.compute(piper_config)
    _, slow, n2 = cns.compute(piper_config, slow=True)
    assert n == n2 == 20  # 21 frames, full batches of 4
    for k in ("state", "actions"):
        for f in ("mean", "std", "q01", "q99"):
            np.testing.assert_allclose(getattr(fast[k], f), getattr(slow[k], f), rtol=1e-6, atol=1e-7)
    assert fast["state"].mean.shape == (7,) and fast["actions"].mean.shape == (7,)
    # delta on the 6 joints: action - state = 0.1 * t on joints, the gripper (dim 6) stays absolute
    assert fast["actions"].mean[6] > 0.3


def test_loader_yields_normalized_tokenized_batches(piper_config, openpi_data_home):
    from openpi.shared import normalize

    dc, stats, _ = cns.compute(piper_config)
    normalize.save(piper_config.assets_dirs / dc.asset_id, stats)
    loader = data_loader.create_data_loader(piper_config, num_batches=2, shuffle=True)
    batches = list(loader)
    assert len(batches) == 2
    obs, actions = batches[0]
    assert actions.shape == (4, 4, 32) and obs.state.shape == (4, 32)
    assert obs.images["base_0_rgb"].shape == (4, 224, 224, 3)
    assert not bool(obs.image_masks["right_wrist_0_rgb"].any()) and bool(obs.image_masks["left_wrist_0_rgb"].all())
    assert obs.tokenized_prompt.shape == (4, 200) and bool(obs.tokenized_prompt_mask[:, 0].all())
    # quantile-normalized into roughly [-1, 1]; padded dims are zero
    assert float(np.abs(np.asarray(actions)[..., :7]).max()) <= 1.5
    assert float(np.abs(np.asarray(actions)[..., 7:]).max()) == 0.0


def test_missing_norm_stats_and_dataset_errors(piper_config, tmp_path):
    cfg = dataclasses.replace(piper_config, assets_base_dir=str(tmp_path))
    with pytest.raises(ValueError, match="make norm-stats"):
        data_loader.create_data_loader(cfg, num_batches=1)
    bad = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, repo_id="does_not_exist"))
    with pytest.raises(FileNotFoundError, match="HF_LEROBOT_HOME"):
        data_loader.create_data_loader(bad, num_batches=1)


def test_every_config_resolves():
    names = _config.list_configs()
    assert {
        "debug",
        "debug_pi05",
        "pi05_piper_pick_cube",
        "pi05_flexiv_pose_train",
        "pi05_flexiv_qpos_train",
        "pi0_aloha_sim",
        "pi05_piper_base",
        "pi05_flexiv_base",
        "debug_pi05_aloha_sim",
    } <= set(names)
    with pytest.raises(ValueError, match="Did you mean"):
        _config.get_config("pi05_piper_pick_cub")
    pose = _config.get_config("pi05_flexiv_pose_train")
    assert pose.data.delta_mask == (3, -7) and pose.data.assets.asset_id == "flexiv_pose"
    assert _config.get_config("pi05_flexiv_qpos_train").data.assets.asset_id == "flexiv_qpos"
    cfg = _config.cli(["pi05_piper_pick_cube", "--exp-name", "e1", "--batch-size", "8", "--num-train-steps", "5"])
    assert (cfg.batch_size, cfg.num_train_steps, cfg.exp_name) == (8, 5, "e1")
