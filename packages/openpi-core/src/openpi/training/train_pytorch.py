"""PyTorch training loop (``scripts/train_pytorch.py``): single process or DDP under torchrun.

* DDP: ``torchrun`` sets ``WORLD_SIZE/RANK/LOCAL_RANK``; NCCL on GPU, gloo on CPU. The global ``batch_size`` is
  split evenly across ranks; gradients are averaged by DDP, so N ranks == one process with the same global batch.
  Flow-matching noise and time are drawn for the *global* batch from a per-step generator and sliced per rank,
  so the loss trajectory does not depend on the number of ranks.
* Precision: ``float32``, ``bfloat16`` (full bf16 weights, upstream default) or ``bf16_autocast`` (fp32 master
  weights, bf16 autocast for the forward/backward).
* EMA of the trainable weights (fp32); ``model.safetensors`` holds the EMA weights when EMA is on (what serving
  loads, like JAX ``params/``), ``raw_model.safetensors`` the raw ones for resuming.
* Checkpoints ``<step>/{model.safetensors, optimizer.pt, metadata.pt, assets/<asset_id>/norm_stats.json}`` are
  written by rank 0 into ``tmp_<step>`` and renamed; ``--resume`` picks the newest complete step.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import dataclasses
import json
import logging
import math
import os
import pathlib
import re
import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from openpi.training import checkpoints
from openpi.training import optimizer as _optimizer
from openpi.training import preflight
from openpi.training import utils

logger = logging.getLogger("openpi.training")

PRECISIONS = ("float32", "bfloat16", "bf16_autocast")


@dataclasses.dataclass(frozen=True)
class TorchOptions:
    """Trainer options that are not part of ``TrainConfig`` (CLI flags of scripts/train_pytorch.py)."""

    precision: str | None = None  # None -> config.pytorch_training_precision
    gradient_checkpointing: bool = True
    ema_decay: float | None | str = "config"  # "config" -> config.ema_decay
    trainable_regex: str | None = None  # None -> everything, or LoRA-only when the model uses *_lora variants
    device: str | None = None


@dataclasses.dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str | None = None) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    dev = torch.device(device) if device else torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def lr_at(lr_schedule, step: int) -> float:
    """The learning rate at ``step``: the JAX trainer's optax schedule, computed in plain Python (no jax here)."""
    return float(lr_schedule.value(step))


def make_optimizer(opt_cfg, params: list[torch.nn.Parameter], lr: float) -> tuple[torch.optim.Optimizer, float | None]:
    """(torch optimizer, gradient clip norm or None) for ``TrainConfig.optimizer``; an optimizer config this trainer
    does not implement is an error (never replaced by AdamW)."""
    _optimizer.check_known(opt_cfg)
    if isinstance(opt_cfg, _optimizer.AdamW):
        betas = (opt_cfg.b1, opt_cfg.b2)
        adamw = torch.optim.AdamW(params, lr=lr, betas=betas, eps=opt_cfg.eps, weight_decay=opt_cfg.weight_decay)
        return adamw, opt_cfg.clip_gradient_norm
    return torch.optim.SGD(params, lr=lr, momentum=opt_cfg.momentum, nesterov=opt_cfg.nesterov), None


def default_trainable_regex(model_config) -> str | None:
    """LoRA: the same rule as the JAX freeze filter (Pi0Config.get_freeze_filter) on the torch parameter names
    (VLM Gemma under ``paligemma_with_expert.paligemma.model.language_model.``, action expert under
    ``paligemma_with_expert.gemma_expert.``): frozen = weights of an adapted Gemma that are not LoRA."""
    pali = "lora" in str(getattr(model_config, "paligemma_variant", ""))
    expert = "lora" in str(getattr(model_config, "action_expert_variant", ""))
    vlm, exp = r"paligemma_with_expert\.paligemma\.model\.language_model\.", r"paligemma_with_expert\.gemma_expert\."
    if pali and expert:
        return rf"^(?!{vlm}|{exp}).*$|.*lora.*"
    if pali:
        return rf"^(?!{vlm}).*$|.*lora.*"
    if expert:
        return rf"^(?!{exp}).*$|.*lora.*"
    return None


def build_model(config, dinfo: DistInfo, precision: str, grad_ckpt: bool) -> torch.nn.Module:
    """PI0Pytorch for ``config.model``: torch-native init seeded by ``config.seed``, or the weights of
    ``config.pytorch_weight_path`` (a dir with ``model.safetensors`` or the file; upstream openpi, LeRobot or our
    layout, see openpi.models_pytorch.loading). Imports no jax."""
    from openpi.models_pytorch import loading  # torch model code only when training it
    from openpi.models_pytorch import pi0_pytorch

    precision = "bfloat16" if precision == "bfloat16" else "float32"
    model_cfg = dataclasses.replace(config.model, dtype=precision)
    weight_path = getattr(config, "pytorch_weight_path", None)
    lora = "lora" in model_cfg.paligemma_variant + model_cfg.action_expert_variant
    torch.manual_seed(config.seed)
    if weight_path and not lora:  # every weight comes from the file: build without storage, then assign
        model = loading.build_on_meta(model_cfg)
    else:
        model = pi0_pytorch.PI0Pytorch(model_cfg)
    if weight_path:
        path = pathlib.Path(weight_path)
        path = path / "model.safetensors" if path.is_dir() else path
        loading.load_state_dict(model, path, precision, keep_missing_lora=lora)
    model = model.to_precision(precision)
    if grad_ckpt:
        model.gradient_checkpointing_enable()
    return model


def _to_device(x, device, dtype=None):
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype if (dtype and x.is_floating_point()) else None)
    if isinstance(x, np.ndarray):
        return _to_device(torch.from_numpy(np.ascontiguousarray(x)), device, dtype)
    if isinstance(x, dict):
        return {k: _to_device(v, device, dtype) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device, dtype) for v in x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return dataclasses.replace(
            x, **{f.name: _to_device(getattr(x, f.name), device, dtype) for f in dataclasses.fields(x)}
        )
    return x


def flow_noise_and_time(seed: int, step: int, global_batch: int, action_shape, rank: int, world: int):
    """Per-step noise ~ N(0,1) and t = 0.001 + 0.999 * Beta(1.5, 1) for the global batch, sliced for ``rank``."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))
    noise = torch.randn((global_batch, *action_shape), generator=g)
    u = torch.rand((global_batch,), generator=g)
    t = u ** (1 / 1.5) * 0.999 + 0.001  # inverse CDF of Beta(1.5, 1) is u**(2/3)
    per = global_batch // world
    sl = slice(rank * per, (rank + 1) * per)
    return noise[sl], t[sl]


def rtc_delays(seed: int, step: int, global_batch: int, max_delay: int, rank: int, world: int):
    """Training-time RTC delays d ~ p(d) ∝ exp(D-1-d), d in {0..D-1}, for the global batch, sliced for ``rank``."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step) + 7_919)
    probs = torch.softmax(torch.arange(max_delay - 1, -1, -1, dtype=torch.float64), 0)
    d = torch.multinomial(probs, global_batch, replacement=True, generator=g)
    per = global_batch // world
    return d[rank * per : (rank + 1) * per]


class EMA:
    def __init__(self, params: dict[str, torch.Tensor], decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in params.items()}

    @torch.no_grad()
    def update(self, params: dict[str, torch.Tensor]) -> None:
        for k, v in params.items():
            self.shadow[k].mul_(self.decay).add_(v.detach().float(), alpha=1 - self.decay)


def default_data_iterator(config, dinfo: DistInfo, start_step: int) -> Iterator:
    from openpi.training import data_loader

    loader = data_loader.create_data_loader(
        config, framework="pytorch", shuffle=True, rank=dinfo.rank, world_size=dinfo.world_size
    )
    it = iter(loader)
    if start_step and preflight.is_fake(loader.data_config()):
        for _ in range(start_step):  # deterministic fake data: replay the stream position
            next(it)
    return it


def _param_norm(named) -> float:
    sq = [
        p.detach().float().pow(2).sum()
        for n, p in named
        if p.ndim > 1 and not any(s in n for s in ("bias", "norm", "embed", "position"))
    ]
    return float(torch.sqrt(torch.stack(sq).sum())) if sq else 0.0


@contextlib.contextmanager
def _swapped_weights(model: torch.nn.Module, values: dict[str, torch.Tensor]):
    """Temporarily load ``values`` (e.g. EMA) into the named parameters of ``model``."""
    params = dict(model.named_parameters())
    backup = {k: params[k].detach().clone() for k in values}
    with torch.no_grad():
        for k, v in values.items():
            params[k].copy_(v.to(params[k].dtype))
    try:
        yield
    finally:
        with torch.no_grad():
            for k, v in backup.items():
                params[k].copy_(v)


def save_torch_checkpoint(checkpoint_dir, step, model, optimizer, ema, *, metadata, norm_stats, asset_id, keep_period):
    import safetensors.torch

    with checkpoints.atomic_step_dir(checkpoint_dir, step) as tmp:
        if ema is not None:
            safetensors.torch.save_model(model, str(tmp / "raw_model.safetensors"))
            with _swapped_weights(model, ema.shadow):
                safetensors.torch.save_model(model, str(tmp / "model.safetensors"))
        else:
            safetensors.torch.save_model(model, str(tmp / "model.safetensors"))
        torch.save(
            {"optimizer": optimizer.state_dict(), "ema": None if ema is None else ema.shadow}, tmp / "optimizer.pt"
        )
        torch.save(metadata, tmp / "metadata.pt")
        if dataclasses.is_dataclass(getattr(model, "config", None)):
            cfg = {
                k: v
                for k, v in dataclasses.asdict(model.config).items()
                if isinstance(v, (int, float, str, bool, type(None)))
            }
            cfg["precision"] = "bfloat16" if metadata.get("precision") == "bfloat16" else "float32"
            (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
        checkpoints.save_assets(tmp, norm_stats, asset_id)
    checkpoints.prune_checkpoints(checkpoint_dir, keep_period=keep_period, max_to_keep=1)


def load_torch_checkpoint(step_dir: pathlib.Path, model, optimizer, ema, device) -> int:
    import safetensors.torch

    raw = step_dir / "raw_model.safetensors"
    safetensors.torch.load_model(
        model, str(raw if raw.exists() else step_dir / "model.safetensors"), device=str(device)
    )
    opt = torch.load(step_dir / "optimizer.pt", map_location=device, weights_only=False)
    optimizer.load_state_dict(opt["optimizer"])
    if ema is not None and opt.get("ema") is not None:
        ema.shadow = {k: v.to(device).float() for k, v in opt["ema"].items()}
    meta = torch.load(step_dir / "metadata.pt", map_location="cpu", weights_only=False)
    return int(meta["global_step"])


def _init_dir(config, dinfo: DistInfo) -> bool:
    ckdir = pathlib.Path(config.checkpoint_dir)
    resuming = None
    if dinfo.is_main:
        resuming = checkpoints.initialize_checkpoint_dir(ckdir, overwrite=config.overwrite, resume=config.resume)
    if dinfo.world_size > 1:
        obj = [resuming]
        dist.broadcast_object_list(obj, src=0)
        resuming = obj[0]
    return bool(resuming)


def train(
    config,
    *,
    options: TorchOptions = TorchOptions(),
    model_factory: Callable[[Any, DistInfo, str, bool], torch.nn.Module] | None = None,
    data_factory: Callable[[int, int, int], Iterator] | None = None,
    progress: bool = True,
    dry_run: bool = False,
) -> dict[int, float] | None:
    """Train (or resume) ``config``; returns ``{step: loss}`` as logged (global-batch mean) on every rank.

    The data config, the dataset, the norm stats and the first batch are checked before the checkpoint dir is touched
    and before the model (and its weights) is built (openpi.training.preflight); ``dry_run`` then prints the abstract
    model and optimizer state and returns None."""
    dinfo = setup_distributed(options.device)
    try:
        return _train(config, dinfo, options, model_factory, data_factory, progress, dry_run)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train(config, dinfo, options, model_factory, data_factory, progress, dry_run=False):
    precision = options.precision or config.pytorch_training_precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    if config.batch_size % dinfo.world_size:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the number of ranks {dinfo.world_size}")
    _optimizer.check_known(config.optimizer)
    ckdir = pathlib.Path(config.checkpoint_dir)

    # Data first (config, dataset, norm stats, first batch): errors surface before any weights are read.
    data_cfg = preflight.build_data_config(config)
    start_step = (checkpoints.latest_step(ckdir) or 0) if config.resume and not dry_run else 0
    if data_factory is not None:
        data_iter = data_factory(start_step, dinfo.rank, dinfo.world_size)
    else:
        preflight.check_data(config, data_cfg)
        data_iter = default_data_iterator(config, dinfo, start_step)
    batch, data_iter = preflight.first_batch(config, data_iter)
    ema_decay = config.ema_decay if options.ema_decay == "config" else options.ema_decay
    if dry_run:
        if dinfo.is_main:  # one report (every rank checked its own data and first batch)
            _dry_run_report(config, dinfo, options, precision, ema_decay, model_factory, batch)
        return None

    resuming = _init_dir(config, dinfo)
    torch.manual_seed(config.seed + dinfo.rank)
    np.random.seed(config.seed + dinfo.rank)

    model = (model_factory or build_model)(config, dinfo, precision, options.gradient_checkpointing).to(dinfo.device)
    if precision == "bfloat16" and model_factory is not None:  # build_model already applied the precision
        model = model.to(torch.bfloat16)
    _set_trainable(model, options.trainable_regex or default_trainable_regex(config.model))
    ddp = model
    if dinfo.world_size > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[dinfo.device.index] if dinfo.device.type == "cuda" else None,
            find_unused_parameters=True,
            gradient_as_bucket_view=True,
        )
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    optimizer, clip = make_optimizer(config.optimizer, list(trainable.values()), lr_at(config.lr_schedule, 0))
    ema = EMA(trainable, ema_decay) if ema_decay is not None else None

    if resuming:
        resumed = load_torch_checkpoint(
            ckdir / str(checkpoints.latest_step(ckdir)), model, optimizer, ema, dinfo.device
        )
        if resumed != start_step:
            raise RuntimeError(
                f"{ckdir}: resumed at step {resumed}, but the data stream was positioned at {start_step}"
            )
        logger.info("rank %d resumed at step %d", dinfo.rank, start_step)
    wandb_run = None
    if dinfo.is_main:
        wandb_run = utils.maybe_init_wandb(
            config.wandb_enabled,
            project=config.project_name,
            name=config.exp_name,
            config=config,
            checkpoint_dir=ckdir,
            resume=resuming,
        )
    mlog = utils.MetricsLogger(
        ckdir / "metrics.jsonl",
        resume_step=start_step if resuming else None,
        enabled=dinfo.is_main,
        wandb_run=wandb_run,
    )
    autocast = (
        torch.autocast(device_type=dinfo.device.type, dtype=torch.bfloat16)
        if precision == "bf16_autocast"
        else contextlib.nullcontext()
    )
    per_rank = config.batch_size // dinfo.world_size
    rtc_max_delay = int(getattr(config.model, "rtc_max_delay", 0) or 0)
    if rtc_max_delay > 0:
        logger.info("training-time RTC on: delays d in [0, %d) per example", rtc_max_delay)
    losses: dict[int, float] = {}
    pending: list[tuple[float, float]] = []
    steps = range(start_step, config.num_train_steps)
    bar = steps
    if progress and dinfo.is_main:
        with contextlib.suppress(ImportError):
            import tqdm

            bar = tqdm.tqdm(steps, initial=start_step, total=config.num_train_steps, dynamic_ncols=True, desc="train")
    ddp.train()
    t0 = time.time()
    for step in bar:
        obs, actions = next(data_iter)
        obs = _to_device(obs, dinfo.device)
        actions = _to_device(actions, dinfo.device, torch.float32)
        if actions.shape[0] != per_rank:
            raise ValueError(f"data loader gave {actions.shape[0]} examples per rank, expected {per_rank}")
        noise, t = flow_noise_and_time(
            config.seed, step, config.batch_size, actions.shape[1:], dinfo.rank, dinfo.world_size
        )
        kw = {"noise": noise.to(dinfo.device, actions.dtype), "time": t.to(dinfo.device, actions.dtype)}
        if rtc_max_delay > 0:  # training-time RTC: clean prefix of d actions, loss on the rest (PI0Pytorch.forward)
            kw["delay"] = rtc_delays(
                config.seed, step, config.batch_size, rtc_max_delay, dinfo.rank, dinfo.world_size
            ).to(dinfo.device)
        with autocast:
            out = ddp(obs, actions, **kw)
        loss = out.float().mean()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(list(trainable.values()), math.inf if clip is None else clip)
        lr = lr_at(config.lr_schedule, step)
        for g in optimizer.param_groups:
            g["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(trainable)
        lv = loss.detach()
        if dinfo.world_size > 1:
            dist.all_reduce(lv)
            lv = lv / dinfo.world_size
        pending.append((float(lv), float(grad_norm)))
        if step % config.log_interval == 0 or step == config.num_train_steps - 1:
            m = {
                "loss": float(np.mean([p[0] for p in pending])),
                "grad_norm": float(np.mean([p[1] for p in pending])),
                "param_norm": _param_norm(model.named_parameters()),
                "lr": lr,
                "steps_per_sec": len(pending) / max(time.time() - t0, 1e-9),
            }
            pending, t0 = [], time.time()
            losses[step] = m["loss"]
            mlog.log(step, m)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{m['loss']:.4f}", grad=f"{m['grad_norm']:.3f}")
            elif dinfo.is_main:
                logger.info("step %d: %s", step, m)
        done = step + 1
        if (done % config.save_interval == 0 and done > start_step) or done == config.num_train_steps:
            if dinfo.is_main:
                meta = {
                    "global_step": done,
                    "config_name": config.name,
                    "exp_name": config.exp_name,
                    "precision": precision,
                    "world_size": dinfo.world_size,
                    "ema_decay": ema_decay,
                    "timestamp": time.time(),
                }
                save_torch_checkpoint(
                    ckdir,
                    done,
                    model,
                    optimizer,
                    ema,
                    metadata=meta,
                    norm_stats=getattr(data_cfg, "norm_stats", None),
                    asset_id=getattr(data_cfg, "asset_id", None),
                    keep_period=config.keep_period,
                )
            if dinfo.world_size > 1:
                dist.barrier()
    return losses


def _set_trainable(model: torch.nn.Module, regex: str | None) -> None:
    if regex:
        pat = re.compile(regex)
        for n, p in model.named_parameters():
            p.requires_grad_(bool(pat.match(n)))


def _dry_run_report(config, dinfo, options, precision, ema_decay, model_factory, batch) -> None:
    """Parameter counts and per-rank memory of the model, gradients, optimizer and EMA state, built on torch's meta
    device (shapes only: no weights are read or allocated), and the first batch."""
    with torch.device("meta"):
        if model_factory is None:
            from openpi.models_pytorch import pi0_pytorch

            dtype = "bfloat16" if precision == "bfloat16" else "float32"
            model = pi0_pytorch.PI0Pytorch(dataclasses.replace(config.model, dtype=dtype)).to_precision(dtype)
        else:
            model = model_factory(config, dinfo, precision, options.gradient_checkpointing)
    _set_trainable(model, options.trainable_regex or default_trainable_regex(config.model))
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    n_total, n_train = sum(p.numel() for p in params), sum(p.numel() for p in trainable)
    weights = sum(p.numel() * p.element_size() for p in params)
    grads = sum(p.numel() * p.element_size() for p in trainable)
    opt_cfg = config.optimizer
    slots = 2 if isinstance(opt_cfg, _optimizer.AdamW) else (1 if opt_cfg.momentum else 0)  # exp_avg(_sq) / momentum
    opt_state = slots * grads
    ema = 4 * n_train if ema_decay is not None else 0  # fp32 shadow of the trainable weights
    batch_rank = preflight.batch_bytes(batch)
    state = weights + grads + opt_state + ema
    fmt = preflight.fmt_bytes
    weight_src = config.pytorch_weight_path or f"initialized from seed {config.seed}"
    rows = [
        ("config", f"{config.name} (PyTorch), batch_size={config.batch_size}, {config.num_train_steps} steps"),
        ("ranks", f"{dinfo.world_size} on {dinfo.device.type}; DDP: model and optimizer state replicated on each rank"),
        ("precision", f"{precision}, EMA {'off' if ema_decay is None else ema_decay}"),
        ("parameters", f"total {preflight.fmt_count(n_total)}, trainable {preflight.fmt_count(n_train)}"),
        (
            "train state per rank",
            f"{fmt(state)} = weights {fmt(weights)}, grads {fmt(grads)}, {type(opt_cfg).__name__} state "
            f"{fmt(opt_state)}, EMA {fmt(ema)}",
        ),
        ("batch per rank", fmt(batch_rank)),
        ("memory per rank (state + batch, activations not included)", fmt(state + batch_rank)),
        ("weights (not loaded)", weight_src),
    ]
    preflight.print_report("PyTorch training dry run", rows, batch)
