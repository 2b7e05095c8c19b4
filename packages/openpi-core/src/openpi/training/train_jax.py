"""JAX training loop (``scripts/train.py``): mesh + FSDP, weight loading, jit train step, EMA, checkpoints.

The trainer only needs these ``TrainConfig`` fields: ``name, exp_name, model, weight_loader, lr_schedule,
optimizer, ema_decay, freeze_filter, seed, batch_size, num_train_steps, log_interval, save_interval,
keep_period, overwrite, resume, wandb_enabled, project_name, fsdp_devices, checkpoint_dir`` and, for assets,
``data`` (``create(assets_dirs, model)`` -> DataConfig with ``norm_stats``/``asset_id``).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import dataclasses
import logging
import pathlib
import time

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from openpi.training import checkpoints
from openpi.training import optimizer as _optimizer
from openpi.training import preflight
from openpi.training import sharding as sh
from openpi.training import utils
from openpi.training import weight_loaders

logger = logging.getLogger("openpi.training")

_NO_NORM = ("bias", "scale", "pos_embedding", "input_embedding")


@dataclasses.dataclass
class TrainResult:
    final_step: int
    checkpoint_dir: pathlib.Path
    losses: dict[int, float]


def make_optimizer(config) -> tuple[optax.GradientTransformation, Callable]:
    """optax transform + lr schedule from ``config.optimizer`` / ``config.lr_schedule`` (openpi.training.optimizer);
    an optimizer config this trainer does not know is an error, never replaced by a default."""
    _optimizer.check_known(config.optimizer)
    return _optimizer.create_optimizer(config.optimizer, config.lr_schedule), config.lr_schedule.create()


def _path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def _param_norm(tree) -> jax.Array:
    leaves = [
        x
        for p, x in jax.tree_util.tree_leaves_with_path(tree)
        if x.ndim > 1 and not any(n in _path_str(p) for n in _NO_NORM)
    ]
    return optax.global_norm(leaves) if leaves else jnp.zeros(())


def _trainable_filter(config):
    return nnx.All(nnx.Param, nnx.Not(config.get_freeze_filter()))


class JaxTrainer:
    """Holds the functional pieces (graphdef, optimizer, jitted step) of one training run."""

    def __init__(self, config, mesh):
        self.config = config
        self.mesh = mesh
        self.tx, self.schedule = make_optimizer(config)
        self.ema_decay = getattr(config, "ema_decay", None)
        rng = jax.random.key(config.seed)
        self.train_rng, self.init_rng = jax.random.split(rng)
        abstract = nnx.eval_shape(lambda: config.model.create(self.init_rng))
        self.graphdef, trainable, frozen, rest = nnx.split(abstract, _trainable_filter(config), nnx.Param, ...)
        self.abstract_state = {"trainable": trainable, "frozen": frozen, "rest": rest}

    # ------------------------------------------------------------------ init
    def init_state(self) -> dict:
        """Random init + weight loader (only loaded leaves replace init), sharded per FSDP rules."""
        config = self.config
        shape_tree = nnx.state(nnx.eval_shape(lambda: config.model.create(self.init_rng))).to_pure_dict()
        loaded = config.weight_loader.load(shape_tree) if config.weight_loader is not None else shape_tree
        partial = weight_loaders.loaded_leaves_only(loaded)
        init = self._init_fn()
        abstract = jax.eval_shape(init, self.init_rng, partial)
        self.state_sharding = self._state_sharding(abstract)
        with self.mesh:
            return jax.jit(init, out_shardings=self.state_sharding)(self.init_rng, partial)

    def abstract_train_state(self) -> tuple[dict, dict]:
        """(shapes, shardings) of the whole train state (params, optimizer state, EMA) without any weights."""
        abstract = jax.eval_shape(self._init_fn(), self.init_rng, {})
        return abstract, self._state_sharding(abstract)

    def _init_fn(self) -> Callable:
        config = self.config
        trainable_filter = _trainable_filter(config)
        bf16_frozen = any(utils.flatten_dict(self.abstract_state["frozen"].to_pure_dict()))

        def init(rng, partial_params):
            model = config.model.create(rng)
            if partial_params:
                state = nnx.state(model)
                nnx.replace_by_pure_dict(state, partial_params)
                nnx.update(model, state)
            _, trainable, frozen, rest = nnx.split(model, trainable_filter, nnx.Param, ...)
            if bf16_frozen:  # frozen weights never get gradients: keep them in bf16 to save memory (upstream)
                frozen = jax.tree.map(
                    lambda x: x.astype(jnp.bfloat16) if jnp.issubdtype(x.dtype, jnp.floating) else x, frozen
                )
            return {
                "step": jnp.zeros((), jnp.int32),
                "trainable": trainable,
                "frozen": frozen,
                "rest": rest,
                "opt_state": self.tx.init(trainable),
                "ema": trainable if self.ema_decay is not None else None,
            }

        return init

    def _state_sharding(self, abstract):
        return sh.fsdp_sharding(abstract, self.mesh)

    # ------------------------------------------------------------------ step
    def make_train_step(self):
        graphdef, tx, ema_decay, train_rng = self.graphdef, self.tx, self.ema_decay, self.train_rng
        augment = bool(getattr(self.config, "image_augmentation", True))

        def loss_fn(trainable, frozen, rest, rng, obs, actions):
            model = nnx.merge(graphdef, trainable, frozen, rest)
            return jnp.mean(model.compute_loss(rng, obs, actions, train=augment))

        def step_fn(state, batch):
            obs, actions = batch
            rng = jax.random.fold_in(train_rng, state["step"])
            loss, grads = jax.value_and_grad(loss_fn)(
                state["trainable"], state["frozen"], state["rest"], rng, obs, actions
            )
            updates, opt_state = tx.update(grads, state["opt_state"], state["trainable"])
            params = optax.apply_updates(state["trainable"], updates)
            new = dict(state, step=state["step"] + 1, trainable=params, opt_state=opt_state)
            if ema_decay is not None:
                new["ema"] = jax.tree.map(lambda e, p: ema_decay * e + (1 - ema_decay) * p, state["ema"], params)
            metrics = {"loss": loss, "grad_norm": optax.global_norm(grads), "param_norm": _param_norm(params)}
            return new, metrics

        return jax.jit(step_fn, donate_argnums=(0,), out_shardings=(self.state_sharding, sh.replicated(self.mesh)))

    # ------------------------------------------------------------------ (de)serialization
    def served_params(self, state) -> dict:
        """Full param tree as served: EMA weights (when on) merged with the frozen ones."""
        trainable = state["ema"] if state.get("ema") is not None else state["trainable"]
        out = utils.flatten_dict(sh.to_host(state["frozen"].to_pure_dict()))
        out.update(utils.flatten_dict(sh.to_host(trainable.to_pure_dict())))
        return utils.unflatten_dict(out)

    def train_state_tree(self, state) -> dict:
        tree = {
            "step": np.asarray(sh.to_host(state["step"])),
            "params": sh.to_host(state["trainable"].to_pure_dict()),
            "frozen": sh.to_host(state["frozen"].to_pure_dict()),
            "opt_state": checkpoints.flatten_opt_state(sh.to_host(state["opt_state"])),
        }
        if state.get("ema") is not None:
            tree["ema_params"] = sh.to_host(state["ema"].to_pure_dict())
        return {k: v for k, v in tree.items() if not (isinstance(v, dict) and not v)}

    def restore(self, state, step_dir: pathlib.Path) -> dict:
        ts = checkpoints.restore_jax_train_state(step_dir)
        new = dict(state)
        for key, src in (("trainable", "params"), ("frozen", "frozen"), ("ema", "ema_params")):
            if state.get(key) is None or src not in ts:
                continue
            s = jax.tree.map(lambda x: x, state[key])
            nnx.replace_by_pure_dict(s, ts[src])
            new[key] = s
        new["opt_state"] = checkpoints.unflatten_opt_state(ts["opt_state"], state["opt_state"])
        new["step"] = np.asarray(ts["step"], np.int32)
        return jax.device_put(new, self.state_sharding)


def default_data_iterator(config, data_sharding) -> Iterator:
    """The config's data loader; with several processes each one yields its slice of the global batch."""
    from openpi.training import data_loader

    n, i = jax.process_count(), jax.process_index()
    return _TimedIterator(data_loader.create_data_loader(config, framework="jax", shuffle=True, rank=i, world_size=n))


class _TimedIterator:
    """The loader's batches; `data_wait_s` = time spent waiting for the (prefetching) loader."""

    def __init__(self, loader):
        self._loader = loader
        self._it = iter(loader)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._it)

    @property
    def data_wait_s(self) -> float:
        return self._loader.data_wait_s


def train(
    config, *, data_factory: Callable[[int], Iterator] | None = None, progress: bool = True, dry_run: bool = False
) -> TrainResult | None:
    """Run (or resume) training described by ``config``; returns the losses logged on this process.

    ``data_factory(start_step)`` may replace the config's data loader: it returns an iterator of per-process
    ``(observation, actions)`` batches positioned at ``start_step``. The data config, the dataset, the norm stats and
    the first batch are checked before the checkpoint dir is touched and before any weights are loaded
    (openpi.training.preflight); ``dry_run`` then prints the abstract train state and returns None.
    """
    if config.batch_size % jax.device_count() != 0:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the device count {jax.device_count()}")
    checkpoint_dir = pathlib.Path(config.checkpoint_dir)
    is_main = jax.process_index() == 0
    _optimizer.check_known(config.optimizer)

    data_cfg = preflight.build_data_config(config)
    norm_stats = getattr(data_cfg, "norm_stats", None)
    asset_id = getattr(data_cfg, "asset_id", None)
    mesh = sh.make_mesh(config.fsdp_devices)
    dsharding = sh.data_sharding(mesh)
    # Read-only here: where a resumed run starts (the dir itself is prepared after the data checks).
    start_step = (checkpoints.latest_step(checkpoint_dir) or 0) if config.resume and not dry_run else 0
    if data_factory is not None:
        data_iter = data_factory(start_step)
    else:
        preflight.check_data(config, data_cfg)
        data_iter = default_data_iterator(config, dsharding)
        if start_step and preflight.is_fake(data_cfg):
            for _ in range(start_step):  # deterministic fake data: replay the stream position
                next(data_iter)
    batch, data_iter = preflight.first_batch(config, data_iter)
    trainer = JaxTrainer(config, mesh)
    if dry_run:
        if is_main:  # one report (every process checked its own data and first batch)
            _dry_run_report(config, trainer, batch)
        return None

    resuming = checkpoints.initialize_checkpoint_dir(checkpoint_dir, overwrite=config.overwrite, resume=config.resume)
    if resuming != bool(start_step):
        raise RuntimeError(f"{checkpoint_dir}: its latest step changed while the data loader started; rerun")
    state = trainer.init_state()
    if resuming:
        state = trainer.restore(state, checkpoint_dir / str(start_step))
        logger.info("Resumed from %s", checkpoint_dir / str(start_step))
    wandb_run = (
        utils.maybe_init_wandb(
            config.wandb_enabled,
            project=config.project_name,
            name=config.exp_name,
            config=config,
            checkpoint_dir=checkpoint_dir,
            resume=resuming,
        )
        if is_main
        else None
    )
    mlog = utils.MetricsLogger(
        checkpoint_dir / "metrics.jsonl",
        resume_step=start_step if resuming else None,
        enabled=is_main,
        wandb_run=wandb_run,
    )
    step_fn = trainer.make_train_step()

    def save(step):
        # all processes gather; only process 0 touches the filesystem
        params, ts = trainer.served_params(state), trainer.train_state_tree(state)
        if is_main:
            checkpoints.save_jax_checkpoint(
                checkpoint_dir,
                step,
                params=params,
                train_state=ts,
                norm_stats=norm_stats,
                asset_id=asset_id,
                keep_period=config.keep_period,
            )
            logger.info("Saved checkpoint %s", checkpoint_dir / str(step))

    losses: dict[int, float] = {}
    pending: list[dict] = []
    bar = _progress(range(start_step, config.num_train_steps), start_step, config.num_train_steps, progress and is_main)
    t0 = time.time()
    data_wait = 0.0  # seconds blocked on the data loader since the last log line (the step runs asynchronously)
    with mesh:
        for step in bar:
            t_data = time.perf_counter()
            waited = getattr(data_iter, "data_wait_s", None)
            batch = next(data_iter)
            # Waiting on the loader itself (the prefetch queue); a plain iterator: the time next() took.
            after = getattr(data_iter, "data_wait_s", None)
            data_wait += (after - waited) if waited is not None else time.perf_counter() - t_data
            batch = sh.to_global_batch(batch, dsharding)
            state, metrics = step_fn(state, batch)
            pending.append(metrics)
            if step % config.log_interval == 0 or step == config.num_train_steps - 1:
                host = jax.device_get(pending)
                avg = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
                avg["lr"] = float(trainer.schedule(step))
                wall = max(time.time() - t0, 1e-9)
                avg["steps_per_sec"] = len(pending) / wall
                avg["step_time_s"] = wall / len(pending)
                avg["data_wait_frac"] = min(data_wait / wall, 1.0)
                pending, t0, data_wait = [], time.time(), 0.0
                losses[step] = avg["loss"]
                mlog.log(step, avg)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{avg['loss']:.4f}", grad=f"{avg['grad_norm']:.3f}")
                else:
                    logger.info("step %d: %s", step, {k: round(v, 5) for k, v in avg.items()})
            done = step + 1
            if (done % config.save_interval == 0 and done > start_step) or done == config.num_train_steps:
                save(done)
    return TrainResult(final_step=config.num_train_steps, checkpoint_dir=checkpoint_dir, losses=losses)


def _dry_run_report(config, trainer: JaxTrainer, batch) -> None:
    """Parameter counts, the train state's per-device memory under its FSDP sharding, the batch; no weights."""
    abstract, shardings = trainer.abstract_train_state()

    def count(tree) -> int:
        return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))

    def per_device(tree, shard_tree) -> int:
        leaves, shards = jax.tree.leaves(tree), jax.tree.leaves(shard_tree)
        return sum(int(np.prod(s.shard_shape(x.shape))) * np.dtype(x.dtype).itemsize for x, s in zip(leaves, shards))

    trainable, frozen = count(abstract["trainable"]), count(abstract["frozen"])
    parts = {k: per_device(abstract[k], shardings[k]) for k in ("trainable", "frozen", "opt_state", "ema", "rest")}
    n_dev = jax.device_count()
    sharded = sum(not s.is_fully_replicated for s in jax.tree.leaves(shardings))
    batch_dev = preflight.batch_bytes(batch) // max(jax.local_device_count(), 1)
    state_dev = sum(parts.values())
    weights = config.weight_loader
    rows = [
        ("config", f"{config.name} (JAX), batch_size={config.batch_size}, {config.num_train_steps} steps"),
        ("devices", f"{n_dev} x {jax.devices()[0].platform}, mesh {dict(trainer.mesh.shape)}"),
        ("sharding", f"{sharded} of {len(jax.tree.leaves(shardings))} state arrays FSDP-sharded, the rest replicated"),
        ("parameters", f"total {preflight.fmt_count(trainable + frozen)}, trainable {preflight.fmt_count(trainable)}"),
        (
            "train state per device",
            f"{preflight.fmt_bytes(state_dev)} = "
            + ", ".join(f"{k} {preflight.fmt_bytes(v)}" for k, v in parts.items() if v),
        ),
        ("batch per device", preflight.fmt_bytes(batch_dev)),
        ("memory per device (state + batch, activations not included)", preflight.fmt_bytes(state_dev + batch_dev)),
        ("weights (not loaded)", f"{type(weights).__name__} {getattr(weights, 'params_path', '')}".rstrip()),
    ]
    preflight.print_report("JAX training dry run", rows, batch)


def _progress(it, start, total, enabled):
    if not enabled:
        return it
    try:
        import tqdm

        return tqdm.tqdm(it, initial=start, total=total, dynamic_ncols=True, desc="train")
    except ImportError:
        return it
