"""Training configs: the named config registry (`make configs`, `get_config`, the `cli`), and re-exports of the config
types from openpi.training.train_config.

python scripts/train.py pi05_piper_pick_cube --exp-name my_exp --batch-size 16   # any field can be overridden
"""

from __future__ import annotations

import difflib
import sys

import tyro

from openpi.training.configs_registry import CONFIGS as _CONFIGS_LIST
from openpi.training.train_config import DEBUG_TOKENIZER
from openpi.training.train_config import PI0_BASE
from openpi.training.train_config import PI05_BASE
from openpi.training.train_config import AssetsConfig
from openpi.training.train_config import DataConfig
from openpi.training.train_config import DataConfigFactory
from openpi.training.train_config import FakeDataConfig
from openpi.training.train_config import LeRobotAlohaDataConfig
from openpi.training.train_config import LeRobotSingleArmDataConfig
from openpi.training.train_config import ModelTransformFactory
from openpi.training.train_config import SimpleDataConfig
from openpi.training.train_config import TrainConfig

__all__ = [
    "DEBUG_TOKENIZER",
    "PI0_BASE",
    "PI05_BASE",
    "AssetsConfig",
    "DataConfig",
    "DataConfigFactory",
    "FakeDataConfig",
    "LeRobotAlohaDataConfig",
    "LeRobotSingleArmDataConfig",
    "ModelTransformFactory",
    "SimpleDataConfig",
    "TrainConfig",
    "cli",
    "get_config",
    "get_config_or_exit",
    "list_configs",
]

# Names of the seed fork's configs that were split or renamed here: asking for one lists its replacements.
RENAMED = {
    "pi05_flexiv_train": ("pi05_flexiv_pose_train", "pi05_flexiv_qpos_train"),
}


_CONFIGS_DICT = {c.name: c for c in _CONFIGS_LIST}
if len(_CONFIGS_DICT) != len(_CONFIGS_LIST):
    raise ValueError("config names must be unique")


def list_configs() -> dict[str, TrainConfig]:
    return dict(_CONFIGS_DICT)


def _renamed(config_name: str) -> str:
    return (
        f"Config '{config_name}' (the seed's name) is split here by action space: use "
        f"{' or '.join(RENAMED[config_name])} (`make configs` lists all)."
    )


def _not_found(config_name: str) -> str | None:
    """Why `config_name` is not a registry config (the seed's renamed names list their replacements, any other name
    its closest matches), or None when it is one."""
    if config_name in _CONFIGS_DICT:
        return None
    if config_name in RENAMED:
        return _renamed(config_name)
    close = difflib.get_close_matches(config_name, _CONFIGS_DICT, n=3, cutoff=0.0)
    return f"Config '{config_name}' not found. Did you mean one of {close}? (`make configs` lists all)"


def get_config(config_name: str) -> TrainConfig:
    if (message := _not_found(config_name)) is not None:
        raise ValueError(message)
    return _CONFIGS_DICT[config_name]


def get_config_or_exit(config_name: str) -> TrainConfig:
    """`get_config` for scripts: an unknown or renamed name exits with the message alone (status 1, no traceback),
    like `cli` does for the seed's renamed names."""
    if (message := _not_found(config_name)) is not None:
        raise SystemExit(message)
    return _CONFIGS_DICT[config_name]


def cli(args: list[str] | None = None) -> TrainConfig:
    """`<config name> [--field value ...]` (sys.argv[1:] by default) -> the config with the overrides applied."""
    first = (sys.argv[1:] if args is None else args)[:1]
    if first and first[0] in RENAMED:
        get_config_or_exit(first[0])  # exits listing the replacements (unless a registry config took the name)
    return tyro.extras.overridable_config_cli({k: (v.description or k, v) for k, v in _CONFIGS_DICT.items()}, args=args)
