"""`scripts/train.py debug` / `debug_pi05` end to end in subprocesses: registry config, fake-data loader, tyro
overrides, checkpoint layout, resume to 2N steps equal to an uninterrupted run, and the written params/ loading
through restore_params + Pi0Config.load."""

import os
import subprocess
import sys

import numpy as np
import pytest

from openpi.training import checkpoints
from openpi.training import utils


@pytest.mark.slow
@pytest.mark.parametrize("name", ["debug", "debug_pi05"])
def test_train_cli_layout_and_resume_match_an_uninterrupted_run(name, tmp_path, repo_root, openpi_data_home):
    """N steps, then --resume to 2N, give the losses of an uninterrupted 2N-step run (tiny pi0 and pi0.5)."""
    from openpi.models import model as _model
    from openpi.training import config as config_mod

    base = tmp_path / "ckpt"
    env = dict(os.environ, JAX_PLATFORMS="cpu", WANDB_MODE="disabled", OPENPI_DATA_HOME=str(openpi_data_home))

    def train(exp: str, steps: int, *extra: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(repo_root / "scripts" / "train.py"), name, f"--exp-name={exp}"]
        cmd += [f"--num-train-steps={steps}", "--save-interval=2", "--keep-period=2", f"--checkpoint-base-dir={base}"]
        return subprocess.run([*cmd, *extra], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)

    full = train("full", 4)
    assert full.returncode == 0, full.stderr[-3000:]
    full_dir = base / name / "full"
    assert checkpoints.list_steps(full_dir) == [2, 4]
    assert {"params", "train_state"} <= {p.name for p in (full_dir / "4").iterdir()}
    # a second run without --resume/--overwrite refuses to touch the directory
    again = train("full", 4)
    assert again.returncode != 0 and "--resume" in again.stderr

    first = train("resumed", 2)
    assert first.returncode == 0, first.stderr[-3000:]
    second = train("resumed", 4, "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    res_dir = base / name / "resumed"
    assert checkpoints.list_steps(res_dir) == [2, 4]
    rows_full, rows_res = utils.read_metrics(full_dir / "metrics.jsonl"), utils.read_metrics(res_dir / "metrics.jsonl")
    assert [r["step"] for r in rows_full] == [r["step"] for r in rows_res] == [0, 1, 2, 3]
    np.testing.assert_allclose([r["loss"] for r in rows_res], [r["loss"] for r in rows_full], rtol=0, atol=1e-6)

    cfg = config_mod.get_config(name)
    params = _model.restore_params(res_dir / "4" / "params", restore_type=np.ndarray)
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
