"""JAX trainer on a toy model: loss goes down, checkpoint layout, exact resume, EMA in params, freeze filter."""

import dataclasses
import sys

import flax.nnx as nnx
import numpy as np
import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import training_toy as toy

from openpi.training import checkpoints
from openpi.training import train_jax
from openpi.training import utils
from openpi.training import weight_loaders


def test_train_resume_matches_uninterrupted_run(tmp_path):
    base = toy.ToyTrainConfig(checkpoint_base_dir=str(tmp_path / "a"), num_train_steps=12, save_interval=6)
    full = train_jax.train(base, data_factory=toy.toy_data_factory(), progress=False)
    assert full.losses[11] < full.losses[0] / 3

    half = dataclasses.replace(base, checkpoint_base_dir=str(tmp_path / "b"), num_train_steps=6)
    train_jax.train(half, data_factory=toy.toy_data_factory(), progress=False)
    step_dir = half.checkpoint_dir / "6"
    assert sorted(p.name for p in step_dir.iterdir()) == ["params", "train_state"]
    with pytest.raises(FileExistsError, match="--resume"):
        train_jax.train(half, data_factory=toy.toy_data_factory(), progress=False)
    resumed = train_jax.train(
        dataclasses.replace(half, num_train_steps=12, resume=True), data_factory=toy.toy_data_factory(), progress=False
    )
    assert min(resumed.losses) == 6
    for step in range(6, 12):
        np.testing.assert_allclose(resumed.losses[step], full.losses[step], rtol=1e-6, atol=1e-7)
    rows = utils.read_metrics(half.checkpoint_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(12))
    assert {"loss", "grad_norm", "param_norm", "lr", "time"} <= set(rows[0])
    assert checkpoints.list_steps(half.checkpoint_dir) == [12]  # max_to_keep=1, no keep_period

    # params = EMA weights, identical for both runs, and readable like any upstream params dir
    pa = weight_loaders.restore_numpy_params(base.checkpoint_dir / "12" / "params")
    pb = weight_loaders.restore_numpy_params(half.checkpoint_dir / "12" / "params")
    for k, v in utils.flatten_dict(pa).items():
        np.testing.assert_allclose(utils.flatten_dict(pb)[k], v, rtol=1e-6, atol=1e-7)
    ts = checkpoints.restore_jax_train_state(half.checkpoint_dir / "12")
    assert int(ts["step"]) == 12
    ema_minus_raw = pa["head"]["kernel"] - ts["params"]["head"]["kernel"]
    assert np.abs(ema_minus_raw).max() > 1e-4
    np.testing.assert_array_equal(pa["head"]["kernel"], ts["ema_params"]["head"]["kernel"])


def test_freeze_filter_and_weight_loader(tmp_path):
    cfg = toy.ToyTrainConfig(checkpoint_base_dir=str(tmp_path), num_train_steps=3, save_interval=3, ema_decay=None)
    train_jax.train(cfg, data_factory=toy.toy_data_factory(), progress=False)
    src = cfg.checkpoint_dir / "3" / "params"
    init = weight_loaders.restore_numpy_params(src)

    lora_cfg = dataclasses.replace(
        cfg,
        exp_name="lora",
        weight_loader=weight_loaders.CheckpointWeightLoader(str(src)),
        freeze_filter=nnx.Not(nnx.PathContains("lora_head")),
        keep_period=1,
    )
    train_jax.train(lora_cfg, data_factory=toy.toy_data_factory(), progress=False)
    out = weight_loaders.restore_numpy_params(lora_cfg.checkpoint_dir / "3" / "params")
    # frozen weights come from the loaded checkpoint (stored in bf16), only the lora head moved
    np.testing.assert_allclose(out["head"]["kernel"].astype(np.float32), init["head"]["kernel"], rtol=1e-2, atol=1e-2)
    assert out["head"]["kernel"].dtype.name == "bfloat16"
    assert np.abs(out["lora_head"]["kernel"] - init["lora_head"]["kernel"]).max() > 1e-3
    assert checkpoints.list_steps(lora_cfg.checkpoint_dir) == [3]
