"""Shared check for the robot tests: a recorded dataset trains through a robot config (norm stats + first batch)."""

from __future__ import annotations

import dataclasses

import numpy as np


def loads_through(config_name, repo_id, root, dim, expected_state):
    """Norm stats from the recorded data, then the first training batch of `config_name`: shapes, and the
    normalized state maps back to the recorded one."""
    from openpi import transforms
    from openpi.shared import normalize
    from openpi.training import config as _config
    from openpi.training import data_loader
    from openpi.training import norm_stats

    base = _config.get_config(config_name)
    cfg = dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, repo_id=repo_id),
        batch_size=2,
        num_workers=0,
        assets_base_dir=str(root / "assets"),
    )
    data_config, stats, frames = norm_stats.compute(cfg)
    assert stats["state"].mean.shape == (dim,) and stats["actions"].mean.shape == (dim,)
    normalize.save(cfg.assets_dirs / data_config.asset_id, stats)
    obs, actions = next(iter(data_loader.create_data_loader(cfg, num_batches=1)))
    assert tuple(obs.state.shape) == (2, 32) and tuple(actions.shape) == (2, cfg.model.action_horizon, 32)
    assert tuple(obs.images["base_0_rgb"].shape[1:]) == (224, 224, 3)
    state = transforms.Unnormalize({"state": stats["state"]}, use_quantiles=data_config.use_quantile_norm)(
        {"state": np.asarray(obs.state)[0, :dim]}
    )["state"]
    np.testing.assert_allclose(state, expected_state, atol=1e-4)
    return frames
