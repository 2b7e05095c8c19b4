"""Shared pytest setup: CPU-only JAX, headless MuJoCo, and the golden reference vectors from ../shared."""

import os
import pathlib

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")

import pytest

# Load torch's compiler stack (which imports triton's native modules) before any test creates a MuJoCo EGL
# context: importing triton after EGL initialisation segfaults in this environment.
import torch._dynamo  # noqa: F401

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _golden_dir() -> pathlib.Path:
    shared = pathlib.Path(os.environ.get("OPENPI_SHARED_DIR", REPO_ROOT.parent / "shared"))
    return shared / "golden"


GOLDEN_DIR = _golden_dir()


@pytest.fixture(scope="session")
def golden_dir() -> pathlib.Path:
    """Directory with upstream reference vectors (../shared/golden, or $OPENPI_SHARED_DIR/golden)."""
    if not GOLDEN_DIR.is_dir():
        pytest.fail(f"golden vectors not found at {GOLDEN_DIR}; put shared/ beside the repo or set OPENPI_SHARED_DIR")
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO_ROOT


@pytest.fixture
def lerobot_home(tmp_path, monkeypatch) -> pathlib.Path:
    """An empty HF_LEROBOT_HOME for tests that write LeRobot datasets."""
    home = tmp_path / "lerobot_home"
    home.mkdir()
    monkeypatch.setenv("HF_LEROBOT_HOME", str(home))
    return home


@pytest.fixture
def openpi_data_home(tmp_path, monkeypatch, golden_dir) -> pathlib.Path:
    """An OPENPI_DATA_HOME download cache pre-seeded with the tiny sentencepiece model in the place where the
    real PaliGemma tokenizer (gs://big_vision/paligemma_tokenizer.model) is cached: <cache>/<bucket>/<path>."""
    import shutil

    home = tmp_path / "openpi_data_home"
    tok = home / "big_vision" / "paligemma_tokenizer.model"
    tok.parent.mkdir(parents=True)
    shutil.copy(golden_dir / "tiny_spm.model", tok)
    monkeypatch.setenv("OPENPI_DATA_HOME", str(home))
    return home


@pytest.fixture
def tiny_checkpoint(tmp_path, golden_dir, openpi_data_home):
    """Factory: `tiny_checkpoint(config_name, dim, horizon=10)` -> (train config with the golden tiny pi0.5 model,
    step dir holding its upstream-format params/ and random norm stats of `dim` dims under the config's asset id).
    `tests/robots/robots_tiny_server.py` rebuilds the same config in a server process."""
    import dataclasses
    import shutil

    import numpy as np

    from openpi.models import pi0_config
    from openpi.models.pi0_config import TINY
    from openpi.shared import normalize
    from openpi.training import config as _config

    def make(config_name: str, dim: int, horizon: int = 10, seed: int = 0):
        base = _config.get_config(config_name)
        cfg = dataclasses.replace(
            base,
            model=pi0_config.Pi0Config(pi05=True, action_horizon=horizon, **TINY),
            policy_metadata={**base.policy_metadata, "action_horizon": horizon},
        )
        step = tmp_path / "checkpoints" / config_name / "100"
        shutil.copytree(golden_dir / "pi05_tiny" / "params", step / "params")
        rng = np.random.default_rng(seed)
        stats = {
            k: normalize.NormStats(
                mean=rng.normal(size=dim),
                std=rng.uniform(0.5, 1, dim),
                q01=-rng.uniform(1, 2, dim),
                q99=rng.uniform(1, 2, dim),
            )
            for k in ("state", "actions")
        }
        asset_id = cfg.data.create(cfg.assets_dirs, cfg.model).asset_id
        normalize.save(step / "assets" / asset_id, stats)
        return cfg, step

    return make
