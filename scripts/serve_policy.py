"""Serve a policy over websocket (upstream-compatible protocol).

    python scripts/serve_policy.py --env ALOHA_SIM                      # pi0_aloha_sim checkpoint
    python scripts/serve_policy.py --env PIPER                          # pi05_base zero-shot on the Piper arm
    python scripts/serve_policy.py policy:checkpoint --policy.config=pi05_piper_pick_cube --policy.dir=checkpoints/...
The dir may be a JAX step dir (params/) or a PyTorch one (model.safetensors), local or gs://.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import socket

import tyro

from openpi.policies import policy as _policy
from openpi.policies import policy_config as _policy_config
from openpi.serving import websocket_policy_server
from openpi.training import config as _config

logger = logging.getLogger("serve_policy")


class EnvMode(enum.Enum):
    ALOHA = "aloha"
    ALOHA_SIM = "aloha_sim"
    PIPER = "piper"
    FLEXIV = "flexiv"


@dataclasses.dataclass
class Checkpoint:
    """Load a trained checkpoint."""

    config: str
    """Training config name (e.g. pi05_piper_pick_cube); it fixes the data format and transforms."""
    dir: str
    """Checkpoint step dir: JAX (params/) or PyTorch (model.safetensors), local path or gs://."""


@dataclasses.dataclass
class Default:
    """Use the default checkpoint of --env."""


@dataclasses.dataclass
class Args:
    env: EnvMode = EnvMode.ALOHA_SIM
    """Robot environment; selects the default checkpoint when no policy:checkpoint is given."""
    default_prompt: str | None = None
    """Prompt used when a request has none."""
    port: int = 8000
    host: str = "0.0.0.0"
    record: bool = False
    """Save every request/response to policy_records/ (load with openpi.policies.policy.load_record)."""
    record_dir: str = "policy_records"
    api_key: str | None = None
    """Require clients to send `Authorization: Api-Key <key>`."""
    max_message_mb: float = 64.0
    """Largest request accepted, enforced by the websocket layer while the frame arrives (a larger one closes the
    connection with 1009 before it is buffered)."""
    debug_errors: bool = False
    """Send clients the full server traceback of a failed request (default: a one-line error). For debugging on a
    trusted network only: a traceback shows the server's paths and code to whoever sent the request."""
    pytorch_device: str | None = None
    """cuda / cpu for PyTorch checkpoints (default: cuda if available)."""
    warmup: bool = True
    """Compile / warm up the model before accepting clients."""
    rtc_method: str | None = None
    """Real-time chunking for requests that carry prev_actions: vjp (guided, Black et al. 2025), identity (J = I
    shortcut, no backward pass) or prefix (training-time RTC; the default for models trained with rtc_max_delay)."""
    rtc_max_guidance_weight: float = 5.0
    """Guidance-weight clip (beta) of the vjp / identity methods."""
    pytorch_compile_mode: str = "config"
    """PyTorch checkpoints: torch.compile mode of the denoising step and prefix pass (default, reduce-overhead,
    max-autotune, max-autotune-no-cudagraphs), none for eager, or config (the train config's
    Pi0Config.pytorch_compile_mode). Compiles during warm-up; the inductor cache under $OPENPI_DATA_HOME makes the next
    start fast (docs/pytorch.md)."""
    policy: Checkpoint | Default = dataclasses.field(default_factory=Default)


DEFAULT_CHECKPOINT: dict[EnvMode, Checkpoint] = {
    EnvMode.ALOHA: Checkpoint("pi05_aloha", "gs://openpi-assets/checkpoints/pi05_base"),
    EnvMode.ALOHA_SIM: Checkpoint("pi0_aloha_sim", "gs://openpi-assets/checkpoints/pi0_aloha_sim"),
    EnvMode.PIPER: Checkpoint("pi05_piper_base", "gs://openpi-assets/checkpoints/pi05_base"),
    EnvMode.FLEXIV: Checkpoint("pi05_flexiv_base", "gs://openpi-assets/checkpoints/pi05_base"),
}


def create_policy(args: Args) -> tuple[_policy.Policy, _config.TrainConfig]:
    ckpt = args.policy if isinstance(args.policy, Checkpoint) else DEFAULT_CHECKPOINT[args.env]
    train_config = _config.get_config_or_exit(ckpt.config)
    policy = _policy_config.create_trained_policy(
        train_config,
        ckpt.dir,
        default_prompt=args.default_prompt,
        pytorch_device=args.pytorch_device,
        rtc_method=args.rtc_method,
        rtc_max_guidance_weight=args.rtc_max_guidance_weight,
        pytorch_compile_mode=args.pytorch_compile_mode,
    )
    return policy, train_config


def prompt_notice(train_config: _config.TrainConfig, default_prompt: str | None) -> str | None:
    """What a server without a default prompt requires of its clients (None when it has one). pi0_aloha / pi05_aloha
    (--env ALOHA) keep upstream's defaults: no default_prompt, the client sends the task with each observation."""
    if default_prompt is not None or getattr(train_config.data, "default_prompt", None) is not None:
        return None
    return (
        f"config {train_config.name!r} has no default prompt: every request must carry 'prompt' (the task), else "
        "it is answered 'Prompt is required'. To serve one task to clients that send none, restart with "
        '--default-prompt "<task>" (or set default_prompt in the config\'s data).'
    )


def main(args: Args) -> None:
    policy, train_config = create_policy(args)
    if (notice := prompt_notice(train_config, args.default_prompt)) is not None:
        logger.warning(notice)
    metadata = dict(policy.metadata)
    if args.warmup:
        first, steady = policy.warmup(train_config.model)
        logger.info("Warm-up: first call %.0f ms (compile), steady %.0f ms", first, steady)
        metadata["warmup_ms"] = {"first": first, "steady": steady}
    served = _policy.PolicyRecorder(policy, args.record_dir) if args.record else policy
    logger.info("Serving %s on %s:%d (host name %s)", train_config.name, args.host, args.port, socket.gethostname())
    server = websocket_policy_server.WebsocketPolicyServer(
        served,
        host=args.host,
        port=args.port,
        metadata=metadata,
        api_key=args.api_key,
        max_message_bytes=int(args.max_message_mb * 1024 * 1024),
        debug_errors=args.debug_errors,
    )
    server.serve_forever()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    main(tyro.cli(Args))
