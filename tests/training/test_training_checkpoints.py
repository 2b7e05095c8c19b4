"""Checkpoint directory management: layout, atomic step dirs, pruning, resume/overwrite rules, metrics log."""

import json

import numpy as np
import optax
import pytest

from openpi.training import checkpoints
from openpi.training import utils
from openpi.training import weight_loaders


def test_overwrite_resume_and_existing_dir_rules(tmp_path):
    d = tmp_path / "ckpt" / "cfg" / "exp"
    assert checkpoints.initialize_checkpoint_dir(d, overwrite=False, resume=False) is False
    (d / "5").mkdir()
    (d / "tmp_10").mkdir()  # an interrupted save
    with pytest.raises(FileExistsError, match="--resume.*--overwrite"):
        checkpoints.initialize_checkpoint_dir(d, overwrite=False, resume=False)
    with pytest.raises(ValueError, match="mutually exclusive"):
        checkpoints.initialize_checkpoint_dir(d, overwrite=True, resume=True)
    assert checkpoints.initialize_checkpoint_dir(d, overwrite=False, resume=True) is True
    assert not (d / "tmp_10").exists()
    assert checkpoints.latest_step(d) == 5
    assert checkpoints.initialize_checkpoint_dir(d, overwrite=True, resume=False) is False
    assert list(d.iterdir()) == []


def _crash_while_saving(checkpoint_dir):
    with checkpoints.atomic_step_dir(checkpoint_dir, 3) as tmp:
        (tmp / "model.safetensors").write_bytes(b"x")
        raise RuntimeError("killed")


def test_atomic_step_dir_never_exposes_partial_steps(tmp_path):
    with pytest.raises(RuntimeError, match="killed"):
        _crash_while_saving(tmp_path)
    assert checkpoints.list_steps(tmp_path) == []
    assert list(tmp_path.iterdir()) == []
    with checkpoints.atomic_step_dir(tmp_path, 3) as tmp:
        (tmp / "a").write_text("1")
        assert checkpoints.list_steps(tmp_path) == []
    with checkpoints.atomic_step_dir(tmp_path, 3) as tmp:  # re-save replaces the step
        (tmp / "a").write_text("2")
    assert (tmp_path / "3" / "a").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3"]


def test_prune_keeps_latest_and_keep_period(tmp_path):
    for s in (100, 200, 300, 400, 500):
        (tmp_path / str(s)).mkdir()
    removed = checkpoints.prune_checkpoints(tmp_path, keep_period=200, max_to_keep=1)
    assert removed == [100, 300]
    assert checkpoints.list_steps(tmp_path) == [200, 400, 500]


def test_jax_checkpoint_is_upstream_layout_and_round_trips(tmp_path, golden_dir):
    params = {
        "action_in_proj": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.ones(3, np.float32)}
    }
    tx = optax.adamw(1e-3)
    opt_state = tx.init(params)
    state = {
        "step": np.asarray(7),
        "params": params,
        "ema_params": params,
        "opt_state": checkpoints.flatten_opt_state(opt_state),
    }
    stats = json.loads((golden_dir / "pi05_tiny" / "assets" / "golden_tiny" / "norm_stats.json").read_text())
    norm = stats["norm_stats"]
    checkpoints.save_jax_checkpoint(tmp_path, 7, params=params, train_state=state, norm_stats=norm, asset_id="robot")
    step = tmp_path / "7"
    assert sorted(p.name for p in step.iterdir()) == ["assets", "params", "train_state"]
    written = json.loads((step / "assets" / "robot" / "norm_stats.json").read_text())
    assert written["norm_stats"].keys() == norm.keys()
    for key, st in norm.items():
        for field, v in st.items():
            np.testing.assert_allclose(written["norm_stats"][key][field], v, rtol=1e-6)
    # The params dir reads back through the weight loader (upstream format: {"params": {... "value"}}).
    raw = checkpoints.restore_pytree(step / "params")
    assert "value" in raw["params"]["action_in_proj"]["kernel"]
    loaded = weight_loaders.restore_numpy_params(step / "params")
    np.testing.assert_array_equal(loaded["action_in_proj"]["kernel"], params["action_in_proj"]["kernel"])
    ts = checkpoints.restore_jax_train_state(step)
    assert int(ts["step"]) == 7
    restored_opt = checkpoints.unflatten_opt_state(ts["opt_state"], opt_state)
    np.testing.assert_array_equal(restored_opt[0].mu["action_in_proj"]["kernel"], 0)


def test_metrics_logger_truncates_on_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = utils.MetricsLogger(path)
    for s in (0, 10, 20, 30):
        log.log(s, {"loss": np.float32(1.0 / (s + 1))})
    with path.open("a") as f:
        f.write('{"step": 40, "lo')  # a line cut by SIGKILL
    utils.MetricsLogger(path, resume_step=30).log(30, {"loss": 0.5})
    rows = utils.read_metrics(path)
    assert [r["step"] for r in rows] == [0, 10, 20, 30]
    assert rows[-1]["loss"] == 0.5 and "time" in rows[-1]


def test_save_assets_with_normstats_objects(tmp_path, golden_dir):
    from openpi.shared import normalize

    src = golden_dir / "pi05_tiny" / "assets" / "golden_tiny"
    stats = normalize.load(src)
    checkpoints.save_assets(tmp_path, stats, "golden_tiny")
    out = tmp_path / "assets" / "golden_tiny" / "norm_stats.json"
    assert json.loads(out.read_text()) == json.loads((src / "norm_stats.json").read_text())
