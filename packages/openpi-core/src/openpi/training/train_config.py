"""`TrainConfig` and the data config factories (the types); the named configs are in configs_registry.py and are
looked up through openpi.training.config (`get_config`, `cli`), which imports both: no import cycle."""

from __future__ import annotations

import abc
from collections.abc import Sequence
import dataclasses
import logging
import pathlib
from typing import Any

import tyro

import openpi.models.model as _model
import openpi.models.pi0_config as pi0_config
import openpi.models.tokenizer as _tokenizer
import openpi.policies.aloha_policy as aloha_policy
import openpi.policies.flexiv_policy as flexiv_policy
import openpi.policies.piper_policy as piper_policy
import openpi.shared.normalize as _normalize
import openpi.training.optimizer as _optimizer
import openpi.training.weight_loaders as weight_loaders
import openpi.transforms as _transforms

logger = logging.getLogger("openpi.config")

PI05_BASE = "gs://openpi-assets/checkpoints/pi05_base"
PI0_BASE = "gs://openpi-assets/checkpoints/pi0_base"


@dataclasses.dataclass(frozen=True)
class AssetsConfig:
    """Where the norm stats come from: `<assets_dir or the config's assets dir>/<asset_id>/norm_stats.json`."""

    assets_dir: str | None = None
    asset_id: str | None = None


@dataclasses.dataclass(frozen=True)
class DataConfig:
    repo_id: str | None = None
    asset_id: str | None = None
    norm_stats: dict[str, _normalize.NormStats] | None = None
    repack_transforms: _transforms.Group = dataclasses.field(default_factory=_transforms.Group)
    data_transforms: _transforms.Group = dataclasses.field(default_factory=_transforms.Group)
    model_transforms: _transforms.Group = dataclasses.field(default_factory=_transforms.Group)
    use_quantile_norm: bool = False
    action_sequence_keys: Sequence[str] = ("actions",)
    prompt_from_task: bool = False


# A small sentencepiece model shipped with the package for the tiny CPU configs (offline demo and tests); real
# configs use PaliGemma's tokenizer (gs://big_vision/paligemma_tokenizer.model, downloaded once into the cache).
DEBUG_TOKENIZER = str(pathlib.Path(__file__).resolve().parents[1] / "assets" / "debug_tokenizer.model")


@dataclasses.dataclass(frozen=True)
class ModelTransformFactory:
    default_prompt: str | None = None
    tokenizer_path: str | None = None

    def __call__(self, model_config: _model.BaseModelConfig) -> _transforms.Group:
        tok = _tokenizer.LazyPaligemmaTokenizer(model_config.max_token_len, self.tokenizer_path)
        discrete = bool(getattr(model_config, "discrete_state_input", False))
        return _transforms.Group(
            inputs=[
                _transforms.InjectDefaultPrompt(self.default_prompt),
                _transforms.SelectImages(tuple(getattr(model_config, "image_keys", _model.IMAGE_KEYS))),
                _transforms.ResizeImages(*getattr(model_config, "image_resolution", _model.IMAGE_RESOLUTION)),
                _transforms.TokenizePrompt(tok, discrete_state_input=discrete),
                _transforms.PadStatesAndActions(model_config.action_dim),
            ]
        )


@dataclasses.dataclass(frozen=True)
class DataConfigFactory(abc.ABC):
    repo_id: str = tyro.MISSING
    assets: AssetsConfig = dataclasses.field(default_factory=AssetsConfig)
    base_config: tyro.conf.Suppress[DataConfig | None] = None
    tokenizer_path: str | None = None  # None = PaliGemma's tokenizer

    @abc.abstractmethod
    def create(self, assets_dirs: pathlib.Path, model_config: _model.BaseModelConfig) -> DataConfig: ...

    def create_base_config(self, assets_dirs: pathlib.Path, model_config: _model.BaseModelConfig) -> DataConfig:
        repo_id = self.repo_id if self.repo_id is not tyro.MISSING else None
        asset_id = self.assets.asset_id or repo_id
        return dataclasses.replace(
            self.base_config or DataConfig(),
            repo_id=repo_id,
            asset_id=asset_id,
            norm_stats=self._load_norm_stats(pathlib.Path(self.assets.assets_dir or assets_dirs), asset_id),
            use_quantile_norm=model_config.model_type != _model.ModelType.PI0,
        )

    def _load_norm_stats(self, assets_dir: pathlib.Path | str, asset_id: str | None):
        if asset_id is None:
            return None
        location = f"{str(assets_dir).rstrip('/')}/{asset_id}"
        try:
            stats = _normalize.load(location)
            logger.info("Loaded norm stats from %s", location)
            return stats
        except (FileNotFoundError, ConnectionError):
            logger.info("Norm stats not found in %s, skipping.", location)
            return None


@dataclasses.dataclass(frozen=True)
class FakeDataConfig(DataConfigFactory):
    repo_id: str = "fake"

    def create(self, assets_dirs, model_config) -> DataConfig:
        return DataConfig(repo_id=self.repo_id)


@dataclasses.dataclass(frozen=True)
class SimpleDataConfig(DataConfigFactory):
    data_transforms: tyro.conf.Suppress[Any] = None  # callable(model_config) -> Group
    model_transforms: tyro.conf.Suppress[Any] = dataclasses.field(default_factory=ModelTransformFactory)

    def create(self, assets_dirs, model_config) -> DataConfig:
        base = self.create_base_config(assets_dirs, model_config)
        data = self.data_transforms(model_config) if self.data_transforms else _transforms.Group()
        return dataclasses.replace(base, data_transforms=data, model_transforms=self.model_transforms(model_config))


@dataclasses.dataclass(frozen=True)
class LeRobotAlohaDataConfig(DataConfigFactory):
    use_delta_joint_actions: bool = True
    default_prompt: str | None = None
    adapt_to_pi: bool = True
    env_state_dim: int = 0
    """> 0: the privileged tier of the sim recipe; the dataset's `observation.environment_state` (cube pose) is
    appended to the state (the sim client sends it as `env_state` with --privileged)."""
    env_state_target_dim: int = 0
    """> 0: a training-only auxiliary target for the pixel tier of the sim recipe. The dataset's
    `observation.environment_state` (cube pose) over the action horizon is appended to the action chunk (action dims
    14..14+n), so the model must predict where the cube is and goes from the camera. The served policy returns only
    the 14 joint dims and needs no `env_state` input."""
    image_crop: tuple[float, float, float, float] | None = None
    """Crop the top camera to (top, left, bottom, right) fractions before the resize (`transforms.CropImages`)."""

    def create(self, assets_dirs, model_config) -> DataConfig:
        keys = {"images": {"cam_high": "observation.images.top"}, "state": "observation.state", "actions": "action"}
        if self.env_state_dim and self.env_state_target_dim:
            raise ValueError(
                "env_state_dim (privileged state input) and env_state_target_dim (auxiliary action target) are "
                "exclusive: set one of them"
            )
        sequence_keys: tuple[str, ...] = ("action",)
        if self.env_state_dim or self.env_state_target_dim:
            keys["env_state"] = "observation.environment_state"
        if self.env_state_target_dim:
            sequence_keys += ("observation.environment_state",)
        repack = _transforms.Group(inputs=[_transforms.RepackTransform(keys)])
        inputs = aloha_policy.AlohaInputs(
            self.adapt_to_pi, env_state_dim=self.env_state_dim, env_state_target_dim=self.env_state_target_dim
        )
        data = _transforms.Group(
            inputs=[inputs],
            outputs=[aloha_policy.AlohaOutputs(self.adapt_to_pi)],
        )
        if self.image_crop is not None:
            data = data.push(inputs=[_transforms.CropImages(self.image_crop)])
        if self.use_delta_joint_actions:
            mask = _transforms.make_bool_mask(6, -1, 6, -1)
            data = data.push(inputs=[_transforms.DeltaActions(mask)], outputs=[_transforms.AbsoluteActions(mask)])
        return dataclasses.replace(
            self.create_base_config(assets_dirs, model_config),
            repack_transforms=repack,
            data_transforms=data,
            model_transforms=ModelTransformFactory(self.default_prompt, self.tokenizer_path)(model_config),
            action_sequence_keys=sequence_keys,
        )


@dataclasses.dataclass(frozen=True)
class LeRobotSingleArmDataConfig(DataConfigFactory):
    """Piper / Flexiv LeRobot datasets: base + wrist cameras, one state/action pair, task string as prompt."""

    robot: str = "piper"  # piper | flexiv
    mode: str = "qpos"  # flexiv only: qpos | pose
    delta_mask: tuple[int, ...] | None = (6, -1)  # make_bool_mask dims; None = absolute actions
    default_prompt: str | None = None

    def _keys(self) -> tuple[str, str]:
        if self.robot == "piper":
            return "observation.state", "action"
        if self.robot == "flexiv":
            return f"observation.state.{self.mode}", f"action.{self.mode}"
        raise ValueError(f"robot={self.robot!r}: use 'piper' or 'flexiv'")

    def create(self, assets_dirs, model_config) -> DataConfig:
        state_key, action_key = self._keys()
        repack = _transforms.Group(
            inputs=[
                _transforms.RepackTransform(
                    {
                        "observation/images/base": "observation.images.base",
                        "observation/images/wrist": "observation.images.wrist",
                        "observation/state": state_key,
                        "actions": action_key,
                        "prompt": "prompt",
                    }
                )
            ]
        )
        if self.robot == "piper":
            data = _transforms.Group(inputs=[piper_policy.PiperInputs()], outputs=[piper_policy.PiperOutputs()])
        else:
            data = _transforms.Group(
                inputs=[flexiv_policy.FlexivInputs(self.mode)], outputs=[flexiv_policy.FlexivOutputs(self.mode)]
            )
        if self.delta_mask:
            mask = _transforms.make_bool_mask(*self.delta_mask)
            data = data.push(inputs=[_transforms.DeltaActions(mask)], outputs=[_transforms.AbsoluteActions(mask)])
        return dataclasses.replace(
            self.create_base_config(assets_dirs, model_config),
            repack_transforms=repack,
            data_transforms=data,
            model_transforms=ModelTransformFactory(self.default_prompt, self.tokenizer_path)(model_config),
            action_sequence_keys=(action_key,),
            prompt_from_task=True,
        )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    name: tyro.conf.Suppress[str]
    project_name: str = "openpi"
    exp_name: str = tyro.MISSING
    model: _model.BaseModelConfig = dataclasses.field(default_factory=pi0_config.Pi0Config)
    weight_loader: tyro.conf.Suppress[Any] = dataclasses.field(default_factory=weight_loaders.NoOpWeightLoader)
    pytorch_weight_path: str | None = None
    pytorch_training_precision: str = "bfloat16"
    lr_schedule: _optimizer.LRScheduleConfig = dataclasses.field(default_factory=_optimizer.CosineDecaySchedule)
    optimizer: _optimizer.OptimizerConfig = dataclasses.field(default_factory=_optimizer.AdamW)
    ema_decay: float | None = 0.99
    image_augmentation: bool = True
    """JAX trainer: random crop / rotation / color jitter of the camera images during training (upstream always
    augments). `--no-image-augmentation` turns it off, e.g. to check that a config can overfit a tiny dataset."""
    freeze_filter: tyro.conf.Suppress[Any] = None
    data: DataConfigFactory = dataclasses.field(default_factory=FakeDataConfig)
    assets_base_dir: str = "./assets"
    checkpoint_base_dir: str = "./checkpoints"
    seed: int = 42
    batch_size: int = 32
    num_workers: int = 2
    frame_cache: bool = False
    """Decode the dataset's videos once into a numpy cache under $OPENPI_DATA_HOME/frame_cache and train from it
    (no video decoding in the step; openpi.training.frame_cache). Costs H*W*3 bytes per frame and camera on disk."""
    num_train_steps: int = 30_000
    log_interval: int = 100
    save_interval: int = 1000
    keep_period: int | None = 5000
    overwrite: bool = False
    resume: bool = False
    wandb_enabled: bool = True
    policy_metadata: tyro.conf.Suppress[dict[str, Any] | None] = None
    fsdp_devices: int = 1
    description: tyro.conf.Suppress[str] = ""

    def __post_init__(self):
        if self.overwrite and self.resume:
            raise ValueError(
                "--overwrite and --resume are mutually exclusive (wipe the checkpoint dir, or continue it)"
            )

    @property
    def assets_dirs(self) -> pathlib.Path:
        return (pathlib.Path(self.assets_base_dir) / self.name).resolve()

    @property
    def checkpoint_dir(self) -> pathlib.Path:
        if not self.exp_name or self.exp_name is tyro.MISSING:
            raise ValueError("--exp-name must be set")
        return (pathlib.Path(self.checkpoint_base_dir) / self.name / self.exp_name).resolve()

    def get_freeze_filter(self):
        """`freeze_filter` if set, else the model's (a LoRA variant freezes everything but its adapters). Derived
        at use time, not stored, so `--model.paligemma-variant gemma_2b_lora` on the command line takes effect."""
        return self.freeze_filter if self.freeze_filter is not None else self.model.get_freeze_filter()

    @property
    def trainable_filter(self):
        from flax import nnx

        return nnx.All(nnx.Param, nnx.Not(self.get_freeze_filter()))
