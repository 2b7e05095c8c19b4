"""The seed README's commands work here or say where to go (README, "Coming from the seed")."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import tomllib

from openpi.shared import download
from openpi.training import config as _config

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_root_package_depends_on_the_workspace_members():
    """`uv pip install -e .` at the root builds an empty package whose dependencies are the members."""
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert root["build-system"]["build-backend"] == "hatchling.build"
    assert root["tool"]["hatch"]["build"]["targets"]["wheel"]["bypass-selection"] is True
    deps = {d.split("[")[0] for d in root["project"]["dependencies"]}
    members = {p.name for p in (REPO / "packages").iterdir() if (p / "pyproject.toml").exists()}
    assert deps == members - {"robot-flexiv"}  # robot-flexiv: Python 3.12 venv (flexivrdk has no 3.11 wheel)
    assert all(root["tool"]["uv"]["sources"][d] == {"workspace": True} for d in deps)
    assert "package" not in root["tool"]["uv"]


def test_seed_flexiv_config_name_lists_the_two_modes():
    with pytest.raises(ValueError, match="pi05_flexiv_pose_train or pi05_flexiv_qpos_train"):
        _config.get_config("pi05_flexiv_train")
    with pytest.raises(SystemExit, match="pi05_flexiv_pose_train or pi05_flexiv_qpos_train"):
        _config.cli(["pi05_flexiv_train", "--exp-name", "x"])


@pytest.mark.parametrize(
    ("name", "fix"),
    [
        ("pi05_flexiv_train", "use pi05_flexiv_pose_train or pi05_flexiv_qpos_train"),  # the seed README's command
        ("pi05_flexiv_pose_trian", "Did you mean one of ['pi05_flexiv_pose_train'"),
    ],
)
def test_norm_stats_with_a_wrong_config_name_prints_only_the_message(name, fix, tmp_path):
    """`scripts/compute_norm_stats.py --config-name <seed / misspelt name>`: the message (the config, its fix) and
    exit 1, no traceback (config.get_config_or_exit, as serve_policy.py; train.py's cli does the same)."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compute_norm_stats.py"), "--config-name", name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line
    assert f"Config '{name}'" in proc.stderr and fix in proc.stderr
    assert not (tmp_path / "assets").exists()


@pytest.mark.slow  # a fresh process importing jax and torch: ~35 s on the loaded CI machine
def test_examples_converter_path_runs_the_converter_with_the_seed_flags(tmp_path):
    """The seed's `examples/convert_jax_model_to_pytorch.py --config_name --checkpoint_dir --output_path` runs
    scripts/convert_jax_model_to_pytorch.py: a checkpoint dir that does not exist is reported by the converter."""
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "convert_jax_model_to_pytorch.py"),
            "--config_name",
            "pi05_piper_pick_cube",
            "--checkpoint_dir",
            str(tmp_path / "no_such_step"),
            "--output_path",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode != 0
    assert "running scripts/convert_jax_model_to_pytorch.py" in proc.stderr
    assert f"{tmp_path / 'no_such_step'} does not exist" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_checkpoint_in_the_seed_layout_is_found(tmp_path, monkeypatch):
    """OPENPI_DATA_HOME=./checkpoints/openpi with pi05_base at checkpoints/openpi/pi05_base (the seed's layout) is
    used for gs://openpi-assets/checkpoints/pi05_base/...; the cache's own copy wins when both exist."""
    monkeypatch.setenv("OPENPI_DATA_HOME", str(tmp_path))
    seed = tmp_path / "pi05_base" / "params"
    seed.mkdir(parents=True)
    url = "gs://openpi-assets/checkpoints/pi05_base/params"
    assert download.maybe_download(url) == seed
    assert download.maybe_download("gs://openpi-assets/checkpoints/pi05_base") == seed.parent
    cached = tmp_path / "openpi-assets" / "checkpoints" / "pi05_base" / "params"
    cached.mkdir(parents=True)
    assert download.maybe_download(url) == cached
    assert download.seed_layout_path("gs://big_vision/paligemma_tokenizer.model") is None


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["convert"], "usage: make convert CONFIG=<config> CKPT=<checkpoint step dir> OUT=<output dir>"),
        (["convert", "CKPT=x"], "usage: make convert CONFIG="),
        (["serve"], "usage: make serve CONFIG=<config> DIR=<checkpoint step dir>"),
        (["convert-dataset"], "usage: make convert-dataset REPO="),
    ],
)
def test_targets_without_their_variables_print_one_usage_line(args, usage):
    proc = subprocess.run(["make", "-s", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1 and usage in proc.stderr
