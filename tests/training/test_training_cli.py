"""`scripts/train.py debug_pi05` end to end in a subprocess: registry config, fake-data loader, tyro overrides,
checkpoint layout, and the written params/ loading through restore_params + Pi0Config.load."""

import os
import subprocess
import sys

import numpy as np
import pytest

from openpi.training import checkpoints
from openpi.training import utils


@pytest.mark.slow
def test_train_cli_debug_pi05(tmp_path, repo_root, openpi_data_home):
    config_mod = pytest.importorskip("openpi.training.config")
    from openpi.models import model as _model

    base = tmp_path / "ckpt"
    cmd = [
        sys.executable,
        str(repo_root / "scripts" / "train.py"),
        "debug_pi05",
        "--exp-name=cli",
        "--num-train-steps=3",
        "--save-interval=2",
        "--keep-period=2",
        f"--checkpoint-base-dir={base}",
    ]
    env = dict(os.environ, JAX_PLATFORMS="cpu", WANDB_MODE="disabled", OPENPI_DATA_HOME=str(openpi_data_home))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckdir = base / "debug_pi05" / "cli"
    assert checkpoints.list_steps(ckdir) == [2, 3]
    assert {"params", "train_state"} <= {p.name for p in (ckdir / "3").iterdir()}
    rows = utils.read_metrics(ckdir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    # a second run without --resume/--overwrite refuses to touch the directory
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170, cwd=tmp_path)
    assert again.returncode != 0 and "--resume" in again.stderr

    cfg = config_mod.get_config("debug_pi05")
    params = _model.restore_params(ckdir / "3" / "params", restore_type=np.ndarray)
    cfg.model.load(params)  # same tree and shapes as the model


def test_every_registry_config_parses_on_the_command_line_with_model_overrides():
    """Each named config (LoRA ones included) goes through the tyro CLI, `--model.*` fields can be overridden, and the
    LoRA freeze filter follows the (possibly overridden) model rather than a value frozen into the config."""
    from flax import nnx

    from openpi.training import config as config_mod

    names = [c.name for c in config_mod._CONFIGS_LIST]
    assert len(names) >= 10
    for name in names:
        cfg = config_mod.cli(
            [name, "--exp-name=x", "--model.action-horizon=7", "--model.rtc-max-delay=3", "--data.repo-id=me/my_data"]
        )
        assert (cfg.name, cfg.model.action_horizon, cfg.model.rtc_max_delay) == (name, 7, 3)
        # The data config keeps its type (robot layout) and takes the override.
        assert type(cfg.data) is type(config_mod.get_config(name).data) and cfg.data.repo_id == "me/my_data"
    lora = config_mod.cli(["pi05_piper_pick_cube_lora", "--exp-name=x"])
    assert lora.get_freeze_filter() == lora.model.get_freeze_filter() != nnx.Nothing
    full = config_mod.cli(["pi05_piper_pick_cube", "--exp-name=x"])
    assert full.get_freeze_filter() == nnx.Nothing
    to_lora = config_mod.cli(["pi05_piper_pick_cube", "--exp-name=x", "--model.paligemma-variant=gemma_2b_lora"])
    assert to_lora.get_freeze_filter() != nnx.Nothing
    # The learning-rate schedule and optimizer of a config are tunable from the command line as well.
    tuned = config_mod.cli(
        ["debug_pi05_overfit", "--exp-name=x", "--lr-schedule.peak-lr=1e-3", "--lr-schedule.decay-steps=150"]
        + ["--optimizer.clip-gradient-norm=0.5"]
    )
    base = config_mod.get_config("debug_pi05_overfit")
    assert (tuned.lr_schedule.peak_lr, tuned.lr_schedule.decay_steps) == (1e-3, 150)
    assert tuned.lr_schedule.warmup_steps == base.lr_schedule.warmup_steps
    assert tuned.optimizer.clip_gradient_norm == 0.5 and type(tuned.optimizer) is type(base.optimizer)
