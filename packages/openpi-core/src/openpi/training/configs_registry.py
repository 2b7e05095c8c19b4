"""The named training / serving configs. `make configs` prints them; add yours here."""

from __future__ import annotations

import dataclasses

import openpi.models.pi0_config as pi0_config
import openpi.training.optimizer as _optimizer
from openpi.training.train_config import DEBUG_TOKENIZER
from openpi.training.train_config import PI0_BASE
from openpi.training.train_config import PI05_BASE
from openpi.training.train_config import AssetsConfig
from openpi.training.train_config import FakeDataConfig
from openpi.training.train_config import LeRobotAlohaDataConfig
from openpi.training.train_config import LeRobotSingleArmDataConfig
from openpi.training.train_config import TrainConfig
import openpi.training.weight_loaders as weight_loaders

# Tiny configs (CPU tests, the offline demo) use pi0_config.TINY with the small bundled tokenizer (works offline).
ALOHA_RESET_POSE = [0, -1.5, 1.5, 0, 0, 0]


def _piper(name, *, lora=False, description=""):
    model = pi0_config.Pi0Config(
        pi05=True,
        **({"paligemma_variant": "gemma_2b_lora", "action_expert_variant": "gemma_300m_lora"} if lora else {}),
    )
    return TrainConfig(
        name=name,
        description=description,
        model=model,
        data=LeRobotSingleArmDataConfig(
            repo_id="piper_lerobot_data",
            robot="piper",
            delta_mask=(6, -1),
            default_prompt="pick up the cube",
            assets=AssetsConfig(asset_id="piper"),
        ),
        weight_loader=weight_loaders.CheckpointWeightLoader(f"{PI05_BASE}/params"),
        num_train_steps=30_000,
        ema_decay=None if lora else 0.99,
        policy_metadata={"robot": "piper", "action_dim": 7, "action_horizon": model.action_horizon, "control_hz": 30},
    )


def _flexiv(name, mode, *, lora=False, description=""):
    model = pi0_config.Pi0Config(
        pi05=True,
        **({"paligemma_variant": "gemma_2b_lora", "action_expert_variant": "gemma_300m_lora"} if lora else {}),
    )
    dim = 8 if mode == "qpos" else 10
    return TrainConfig(
        name=name,
        description=description,
        model=model,
        data=LeRobotSingleArmDataConfig(
            repo_id="flexiv_lerobot_data",
            robot="flexiv",
            mode=mode,
            # qpos: 7 joints relative, gripper absolute. pose: xyz relative; rotation-6D and gripper absolute.
            delta_mask=(7, -1) if mode == "qpos" else (3, -7),
            assets=AssetsConfig(asset_id=f"flexiv_{mode}"),
        ),
        weight_loader=weight_loaders.CheckpointWeightLoader(f"{PI05_BASE}/params"),
        num_train_steps=30_000,
        ema_decay=None if lora else 0.99,
        policy_metadata={
            "robot": "flexiv",
            "mode": mode,
            "action_dim": dim,
            "action_horizon": model.action_horizon,
            "control_hz": 20,
        },
    )


def _tiny(name: str, description: str, model, *, data=None, **overrides) -> TrainConfig:
    """A CPU-sized config: tiny model, fake data unless given, no EMA / wandb / worker processes."""
    defaults = dict(
        batch_size=2, num_train_steps=10, save_interval=100, log_interval=1, num_workers=0, wandb_enabled=False
    )
    return TrainConfig(
        name=name,
        description=description,
        model=model,
        data=data if data is not None else FakeDataConfig(),
        ema_decay=None,
        **{**defaults, **overrides},
    )


# The CPU-trainable ALOHA-sim recipe (bench/RESULTS.md, `make sim-benchmark`): pi0.5 with small Gemma experts and a
# small SigLIP that embeds only the one camera gym-aloha has, at 112x112 (64 image tokens instead of 3 x 256), action
# horizon 50 (so RTC can be measured), trained from scratch on scripted transfer-cube demonstrations.
ALOHA_SIM_SMALL_MODEL = pi0_config.Pi0Config(
    pi05=True,
    paligemma_variant="small",
    action_expert_variant="small",
    vision_variant="small",
    dtype="float32",
    paligemma_vocab_size=1024,
    max_token_len=96,
    action_horizon=50,
    image_keys=("base_0_rgb",),
    image_resolution=(112, 112),
)


# The same recipe as pi0 (the recommended one): the state enters the action expert as one continuous token instead of
# ~3.5 digit tokens a value in the prompt. A model trained from scratch has to learn to parse those decimal numbers
# before it can use them; with the discretized state, pi0.5 small scored 0/50 on the privileged tier
# (bench/RESULTS.md). The prompt is then only the task, so 16 text tokens do.
ALOHA_SIM_SMALL_PI0_MODEL = dataclasses.replace(
    ALOHA_SIM_SMALL_MODEL, pi05=False, discrete_state_input=False, max_token_len=16
)

# The table region of gym-aloha's top camera (top, left, bottom, right fractions): the arms' bases and the black
# surround are cut, so the ~4 px cube of a 120x160 render covers more of the model's input.
ALOHA_SIM_TABLE_CROP = (0.2, 0.15, 0.8, 0.85)


def _aloha_sim_small(
    name: str,
    description: str,
    *,
    env_state_dim: int = 0,
    env_state_target_dim: int = 0,
    model: pi0_config.Pi0Config = ALOHA_SIM_SMALL_MODEL,
    image_crop: tuple[float, float, float, float] | None = None,
    image_augmentation: bool = True,
    num_train_steps: int = 2400,
    save_interval: int = 800,
    repo_id: str = "aloha_sim_transfer_small",
) -> TrainConfig:
    return TrainConfig(
        name=name,
        description=description,
        model=model,
        data=LeRobotAlohaDataConfig(
            repo_id=repo_id,
            default_prompt="Transfer cube",
            use_delta_joint_actions=False,
            adapt_to_pi=False,
            env_state_dim=env_state_dim,
            env_state_target_dim=env_state_target_dim,
            image_crop=image_crop,
            tokenizer_path=DEBUG_TOKENIZER,
            # The privileged state and the cube-target actions have more dims than the pixel tier's: own stats.
            assets=AssetsConfig(
                asset_id=repo_id + ("_privileged" if env_state_dim else "_cube_target" if env_state_target_dim else "")
            ),
        ),
        image_augmentation=image_augmentation,
        # Sized for a 2-core CPU (bench/RESULTS.md: ~0.2-0.4 s a step); on a GPU raise steps and batch. One cosine
        # schedule over the whole run; every checkpoint is a learning-curve point of `make sim-benchmark`.
        lr_schedule=_optimizer.CosineDecaySchedule(
            warmup_steps=100, peak_lr=1e-3, decay_steps=num_train_steps, decay_lr=1e-4
        ),
        batch_size=16,
        num_train_steps=num_train_steps,
        log_interval=50,
        save_interval=save_interval,
        keep_period=save_interval,
        ema_decay=None,
        num_workers=0,
        frame_cache=True,
        wandb_enabled=False,
        policy_metadata={"robot": "aloha_sim", "action_dim": 14, "action_horizon": 50, "control_hz": 50},
    )


def _aloha_sim_pixels(name: str, description: str, model: pi0_config.Pi0Config, **overrides) -> TrainConfig:
    # The table crop (72x112 of the 120x160 render) at 96x144 through a conv stem into 16 px tokens (54 image
    # tokens); the plain 14 px patch embedding at 84x126 scored <= 5% (bench/RESULTS.md). No geometric
    # augmentation: the camera is fixed, and a random 95% crop / 5 degree rotation moves the ~1 cm/px image by +-3 px.
    kwargs = dict(
        model=dataclasses.replace(model, vision_variant="small_conv", image_resolution=(96, 144)),
        image_crop=ALOHA_SIM_TABLE_CROP,
        image_augmentation=False,
        num_train_steps=6000,
        save_interval=1500,
    )
    return _aloha_sim_small(name, description, **{**kwargs, **overrides})


def _aloha_sim_tiers(
    family: str, model: pi0_config.Pi0Config, privileged_model: pi0_config.Pi0Config
) -> tuple[TrainConfig, TrainConfig]:
    """`<family>_aloha_sim_small` (pixels) and `<family>_aloha_sim_small_privileged` (pipeline check)."""
    name = f"{family}_aloha_sim_small"
    arch = "pi0" if family == "pi0" else "pi0.5"
    pixels = _aloha_sim_pixels(
        name,
        f"small {arch} trained from scratch on scripted ALOHA-sim transfer-cube (pixels + joints; CPU recipe)",
        model,
    )
    privileged = _aloha_sim_small(
        f"{name}_privileged",
        f"pipeline check: {name} whose state also carries the PRIVILEGED sim cube pose",
        env_state_dim=7,
        model=privileged_model,
        # One cosine schedule over 8000 steps (5.3 epochs of 60 demos): the curve still rose at 8000 (RESULTS.md).
        num_train_steps=8000,
        save_interval=2000,
    )
    return pixels, privileged


# The pixel tier at twice the render resolution: demonstrations and evaluation rendered at 240x320 (the cube ~8 px
# instead of ~4; one pixel ~0.6 cm of table), the same table crop embedded at 144x224 = 9x14 tokens of 16 px.
# `make sim-benchmark TIER=pixels-hires` renders at that size.
ALOHA_SIM_HIRES_RENDER = (240, 320)
PI0_ALOHA_SIM_SMALL_HIRES = _aloha_sim_small(
    "pi0_aloha_sim_small_hires",
    "pi0_aloha_sim_small on a 240x320 render (dataset aloha_sim_transfer_small_240x320; pixels + joints)",
    model=dataclasses.replace(ALOHA_SIM_SMALL_PI0_MODEL, vision_variant="small_conv", image_resolution=(144, 224)),
    image_crop=ALOHA_SIM_TABLE_CROP,
    image_augmentation=False,
    num_train_steps=4000,
    save_interval=1000,
    repo_id="aloha_sim_transfer_small_240x320",
)


# The pixel tier with an auxiliary training target: the cube pose over the action chunk is appended to the actions
# (dims 14..20), so the flow-matching loss itself asks the vision tower where the cube is. Served, the policy sees only
# the camera and the joints (the cube dims are dropped). The simulator's pose is used as a label at training time only.
PI0_ALOHA_SIM_SMALL_CUBE_TARGET = _aloha_sim_pixels(
    "pi0_aloha_sim_small_cube_target",
    "pi0_aloha_sim_small that also learns to predict the cube pose over the chunk (a training-only auxiliary target; "
    "served from pixels + joints)",
    ALOHA_SIM_SMALL_PI0_MODEL,
    env_state_target_dim=7,
    # 200 demonstrations (`make sim-benchmark TIER=pixels-cube-target` generates them) in their own dataset, so the
    # 60-demo one of the other tiers is not reused by mistake; one cosine schedule over 12000 steps (2.4 epochs).
    repo_id="aloha_sim_transfer_small_200",
    num_train_steps=12000,
    save_interval=3000,
)
# The model-size lever on top of it: the `medium_conv` vision tower, one 6000-step schedule (compare with the 6000-step
# run of the config above in bench/RESULTS.md).
PI0_ALOHA_SIM_CUBE_TARGET_MEDIUM_VISION = dataclasses.replace(
    PI0_ALOHA_SIM_SMALL_CUBE_TARGET,
    name="pi0_aloha_sim_cube_target_medium_vision",
    description="pi0_aloha_sim_small_cube_target with the larger medium_conv vision tower (model-size lever)",
    model=dataclasses.replace(PI0_ALOHA_SIM_SMALL_CUBE_TARGET.model, vision_variant="medium_conv"),
    num_train_steps=6000,
    save_interval=1500,
    keep_period=1500,
    lr_schedule=dataclasses.replace(PI0_ALOHA_SIM_SMALL_CUBE_TARGET.lr_schedule, decay_steps=6000),
)


CONFIGS = [
    # ------------------------------------------------------------------------------------------- tiny / CPU
    _tiny(
        "debug", "tiny pi0 on fake data (CPU smoke test)", pi0_config.Pi0Config(action_horizon=10, **pi0_config.TINY)
    ),
    _tiny(
        "debug_pi05",
        "tiny pi0.5 on fake data (CPU smoke test)",
        pi0_config.Pi0Config(pi05=True, action_horizon=10, **pi0_config.TINY),
    ),
    _tiny(
        "debug_pi05_aloha_sim",
        "tiny pi0.5 on the scripted ALOHA-sim dataset (make demo)",
        pi0_config.Pi0Config(pi05=True, action_horizon=10, **pi0_config.TINY),
        data=LeRobotAlohaDataConfig(
            repo_id="aloha_sim_scripted",
            default_prompt="Transfer cube",
            use_delta_joint_actions=False,
            tokenizer_path=DEBUG_TOKENIZER,
        ),
        lr_schedule=_optimizer.CosineDecaySchedule(warmup_steps=20, peak_lr=1e-3, decay_steps=1000, decay_lr=1e-4),
        batch_size=8,
        num_train_steps=300,
        log_interval=10,
        policy_metadata={"robot": "aloha_sim", "action_dim": 14, "action_horizon": 10, "control_hz": 50},
    ),
    _tiny(
        "debug_pi05_rtc",
        "tiny pi0.5 on fake data with training-time RTC (rtc_max_delay=4; CPU smoke test)",
        pi0_config.Pi0Config(pi05=True, action_horizon=10, rtc_max_delay=4, **pi0_config.TINY),
    ),
    _tiny(
        "debug_pi05_overfit",
        "tiny pi0.5 overfitting a small Piper-format dataset (tests/training/test_training_overfit.py)",
        pi0_config.Pi0Config(pi05=True, action_horizon=4, action_dim=8, **{**pi0_config.TINY, "max_token_len": 48}),
        data=LeRobotSingleArmDataConfig(
            repo_id="piper_overfit",
            robot="piper",
            delta_mask=None,
            default_prompt="pick up the cube",
            tokenizer_path=DEBUG_TOKENIZER,
        ),
        # Batch 4 = every frame each step, no image augmentation (it is a regulariser: with it the loss stalls at
        # ~0.45), cosine decay to 1e-4 (a constant lr stalls at ~0.6). Measured drops in docs/training.md.
        lr_schedule=_optimizer.CosineDecaySchedule(warmup_steps=5, peak_lr=3e-3, decay_steps=220, decay_lr=1e-4),
        batch_size=4,
        num_train_steps=220,
        image_augmentation=False,
        save_interval=1000,
        pytorch_training_precision="float32",
        policy_metadata={"robot": "piper", "action_dim": 7, "action_horizon": 4, "control_hz": 30},
    ),
    # -------------------------------------------------------------------------------------------- ALOHA
    *_aloha_sim_tiers("pi0", ALOHA_SIM_SMALL_PI0_MODEL, ALOHA_SIM_SMALL_PI0_MODEL),
    PI0_ALOHA_SIM_SMALL_HIRES,
    PI0_ALOHA_SIM_SMALL_CUBE_TARGET,
    PI0_ALOHA_SIM_CUBE_TARGET_MEDIUM_VISION,
    # The privileged pi0.5 prompt carries 7 more discretized state values: 112 tokens hold it whole (96 cut its end).
    *_aloha_sim_tiers("pi05", ALOHA_SIM_SMALL_MODEL, dataclasses.replace(ALOHA_SIM_SMALL_MODEL, max_token_len=112)),
    TrainConfig(
        name="pi0_aloha_sim",
        description="pi0 on lerobot/aloha_sim_transfer_cube_human (serve --env ALOHA_SIM)",
        model=pi0_config.Pi0Config(),
        data=LeRobotAlohaDataConfig(
            repo_id="lerobot/aloha_sim_transfer_cube_human",
            default_prompt="Transfer cube",
            use_delta_joint_actions=False,
        ),
        weight_loader=weight_loaders.CheckpointWeightLoader(f"{PI0_BASE}/params"),
        num_train_steps=20_000,
        policy_metadata={"robot": "aloha_sim", "action_dim": 14, "action_horizon": 50, "control_hz": 50},
    ),
    TrainConfig(
        name="pi0_aloha",
        description="pi0 ALOHA (Trossen) inference with the base model's trossen norm stats",
        model=pi0_config.Pi0Config(),
        data=LeRobotAlohaDataConfig(repo_id="trossen", assets=AssetsConfig(asset_id="trossen")),
        policy_metadata={"reset_pose": ALOHA_RESET_POSE, "action_dim": 14, "action_horizon": 50, "control_hz": 50},
    ),
    TrainConfig(
        name="pi05_aloha",
        description="pi0.5 ALOHA inference (serve --env ALOHA with pi05_base)",
        model=pi0_config.Pi0Config(pi05=True),
        data=LeRobotAlohaDataConfig(repo_id="trossen", assets=AssetsConfig(asset_id="trossen")),
        policy_metadata={"reset_pose": ALOHA_RESET_POSE, "action_dim": 14, "action_horizon": 50, "control_hz": 50},
    ),
    # -------------------------------------------------------------------------------------------- Piper
    _piper("pi05_piper_pick_cube", description="pi0.5 full fine-tune on datasets/piper_lerobot_data (7-d joints)"),
    _piper("pi05_piper_pick_cube_lora", lora=True, description="pi0.5 LoRA fine-tune for Piper (fits ~24 GB GPUs)"),
    TrainConfig(
        name="pi05_piper_base",
        description="zero-shot pi05_base on Piper (serve --env PIPER)",
        model=pi0_config.Pi0Config(pi05=True),
        data=LeRobotSingleArmDataConfig(
            repo_id="piper_lerobot_data",
            robot="piper",
            delta_mask=(6, -1),
            default_prompt="pick up the cube",
            assets=AssetsConfig(assets_dir=f"{PI05_BASE}/assets", asset_id="trossen"),
        ),
        policy_metadata={"robot": "piper", "action_dim": 7, "action_horizon": 50, "control_hz": 30},
    ),
    # -------------------------------------------------------------------------------------------- Flexiv
    _flexiv("pi05_flexiv_pose_train", "pose", description="pi0.5 on Flexiv TCP pose (xyz + rot6d + gripper)"),
    _flexiv("pi05_flexiv_qpos_train", "qpos", description="pi0.5 on Flexiv joints (7 + gripper)"),
    _flexiv("pi05_flexiv_pose_train_lora", "pose", lora=True, description="LoRA version of pi05_flexiv_pose_train"),
    _flexiv("pi05_flexiv_qpos_train_lora", "qpos", lora=True, description="LoRA version of pi05_flexiv_qpos_train"),
    TrainConfig(
        name="pi05_flexiv_base",
        description="zero-shot pi05_base on Flexiv in qpos mode (serve --env FLEXIV)",
        model=pi0_config.Pi0Config(pi05=True),
        data=LeRobotSingleArmDataConfig(
            repo_id="flexiv_lerobot_data",
            robot="flexiv",
            mode="qpos",
            delta_mask=(7, -1),
            assets=AssetsConfig(assets_dir=f"{PI05_BASE}/assets", asset_id="franka"),
        ),
        policy_metadata={"robot": "flexiv", "mode": "qpos", "action_dim": 8, "action_horizon": 50, "control_hz": 20},
    ),
]
