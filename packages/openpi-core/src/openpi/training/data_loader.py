"""Data loading: LeRobot (or fake) datasets -> transforms -> batches of (Observation, actions) for JAX or PyTorch."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
import logging
import queue
import threading
import time
from typing import Any
from typing import Literal

import numpy as np

import openpi.models.model as _model
import openpi.transforms as _transforms

logger = logging.getLogger("openpi.data")


class FakeDataset:
    """Random samples shaped like the model inputs (float ~U(-1,1), int ~U[0,2048), bool False)."""

    def __init__(self, model_config: _model.BaseModelConfig, num_samples: int = 1024):
        self._num_samples = num_samples
        self._obs_spec, self._act_spec = model_config.inputs_spec()
        self._max_token = min(2048, getattr(model_config, "paligemma_vocab_size", 2048))

    def __len__(self) -> int:
        return self._num_samples

    def __getitem__(self, index) -> dict:
        rng = np.random.default_rng(int(index))

        def make(spec):
            shape = spec.shape[1:]
            dtype = np.dtype(spec.dtype)
            if np.issubdtype(dtype, np.floating):
                return rng.uniform(-1, 1, size=shape).astype(dtype)
            if np.issubdtype(dtype, np.integer):
                return rng.integers(0, self._max_token, size=shape).astype(dtype)
            return np.zeros(shape, dtype=dtype)

        from openpi.shared.tree import tree_map

        obs = tree_map(make, self._obs_spec)
        sample = {k: v for k, v in obs.to_dict().items() if v is not None}
        return {**sample, "actions": make(self._act_spec)}


class TransformedDataset:
    def __init__(self, dataset, transforms: Sequence[_transforms.DataTransformFn]):
        self._dataset = dataset
        self._transform = _transforms.compose(transforms)

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, index) -> dict:
        return self._transform(self._dataset[index])


def _to_numpy(sample: dict) -> dict:
    out = {}
    for k, v in sample.items():
        if hasattr(v, "numpy") and hasattr(v, "dtype") and "torch" in type(v).__module__:
            v = v.numpy()
            if v.ndim == 3 and v.shape[0] == 3 and np.issubdtype(v.dtype, np.floating):  # LeRobot video CHW [0,1]
                v = (np.transpose(v, (1, 2, 0)) * 255).round().astype(np.uint8)
        out[k] = v
    return out


class _LeRobotSamples:
    """LeRobotDataset items as numpy, images HWC uint8, plus `prompt` from the task when asked."""

    def __init__(self, dataset, prompt_from_task: bool):
        self._dataset = dataset
        self._prompt_from_task = prompt_from_task

    def __len__(self):
        return len(self._dataset)

    def __getitem__(self, index):
        sample = _to_numpy(self._dataset[int(index)])
        if self._prompt_from_task and "task" in sample:
            sample["prompt"] = str(sample["task"])
        return sample


def create_torch_dataset(
    data_config, action_horizon: int, model_config: _model.BaseModelConfig, *, frame_cache: bool = False
):
    """The dataset of `data_config`; `frame_cache` serves it from decoded frames (openpi.training.frame_cache)."""
    repo_id = data_config.repo_id
    if repo_id is None:
        raise ValueError(
            "data config has no repo_id; set data.repo_id to the dataset folder name under HF_LEROBOT_HOME"
        )
    if repo_id == "fake":
        return FakeDataset(model_config, num_samples=1024)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    from openpi.training import dataset_version

    dataset_version.check_local(repo_id)  # a v2.x copy: names `make convert-dataset`
    try:
        meta = LeRobotDatasetMetadata(repo_id)
    except Exception as e:
        import os

        home = os.environ.get("HF_LEROBOT_HOME", "~/.cache/huggingface/lerobot")
        raise FileNotFoundError(
            f"LeRobot dataset {repo_id!r} not found under HF_LEROBOT_HOME={home} ({type(e).__name__}: {e}). "
            "Set HF_LEROBOT_HOME (default for make targets: ./datasets) or download it (make download-dataset)."
        ) from e
    if frame_cache:
        from openpi.training import frame_cache as _frame_cache

        return _frame_cache.cached_samples(
            repo_id, data_config.action_sequence_keys, action_horizon, prompt_from_task=data_config.prompt_from_task
        )
    dataset = LeRobotDataset(
        repo_id,
        delta_timestamps={
            key: [t / meta.fps for t in range(action_horizon)] for key in data_config.action_sequence_keys
        },
        video_backend="torchcodec",
    )
    return _LeRobotSamples(dataset, data_config.prompt_from_task)


def transform_dataset(dataset, data_config, *, skip_norm_stats: bool = False):
    norm_stats = {}
    if data_config.repo_id != "fake" and not skip_norm_stats:
        if data_config.norm_stats is None:
            raise ValueError(
                f"Normalization stats not found for asset id {data_config.asset_id!r}. "
                "Run `make norm-stats CONFIG=<config>` (scripts/compute_norm_stats.py) first."
            )
        norm_stats = data_config.norm_stats
    return TransformedDataset(
        dataset,
        [
            *data_config.repack_transforms.inputs,
            *data_config.data_transforms.inputs,
            _transforms.Normalize(norm_stats, use_quantiles=data_config.use_quantile_norm),
            *data_config.model_transforms.inputs,
        ],
    )


def _collate(items: list[dict]) -> dict:
    def stack(values):
        first = values[0]
        if isinstance(first, dict):
            return {k: stack([v[k] for v in values]) for k in first}
        return np.stack([np.asarray(v) for v in values])

    return stack(items)


class DataLoaderImpl:
    def __init__(self, data_config, loader):
        self._data_config = data_config
        self._loader = loader

    def data_config(self):
        return self._data_config

    def __iter__(self) -> Iterator[tuple[_model.Observation, Any]]:
        for batch in self._loader:
            yield _model.Observation.from_dict(batch), batch["actions"]

    @property
    def data_wait_s(self) -> float:
        """Seconds the consumer has waited for a batch so far (the step time the data path costs)."""
        return self._loader.data_wait_s


class _Prefetch:
    """Iterate `source` in a background thread, `depth` batches ahead; `wait_s` counts the consumer's waiting.

    Loading (sampling, decoding, transforms, collate: numpy/PIL work that mostly releases the GIL) then overlaps the
    model step. An exception in the thread is re-raised in the consumer.
    """

    _END = object()

    def __init__(self, source: Iterator, depth: int):
        self.wait_s = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), daemon=True, name="openpi-prefetch")
        self._thread.start()

    def _run(self, source):
        try:
            for item in source:
                while not self._stop.is_set():
                    try:
                        self._queue.put((item, None), timeout=0.5)
                        break
                    except queue.Full:  # the consumer is behind: check for close and retry
                        continue
                if self._stop.is_set():
                    return
            self._queue.put((self._END, None))
        except BaseException as e:  # handed to the consumer, which re-raises it
            self._queue.put((self._END, e))

    def __iter__(self):
        return self

    def __next__(self):
        start = time.perf_counter()
        item, error = self._queue.get()
        self.wait_s += time.perf_counter() - start
        if error is not None:
            raise error
        if item is self._END:
            raise StopIteration
        return item

    def close(self):
        self._stop.set()


class GlobalBatchSampler:
    """Batch sampler: per epoch a permutation from `seed + epoch` (or the dataset order) cut into global batches of
    `local_batch_size * world_size` (last partial batch dropped); rank r yields the r-th slice of each."""

    def __init__(self, n: int, local_batch_size: int, rank: int, world_size: int, *, shuffle: bool, seed: int):
        self.n, self.local, self.rank, self.world = n, local_batch_size, rank, world_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // (self.local * self.world)

    def __iter__(self):
        import torch

        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        size = self.local * self.world
        for start in range(0, len(self) * size, size):
            first = start + self.rank * self.local
            yield order[first : first + self.local]


class TorchDataLoader:
    """Shuffled, drop_last batches; loops forever unless num_batches is set. framework="jax" yields jax arrays
    (sharded over the batch axis), "pytorch" yields torch tensors; with world_size > 1 each rank reads its own shard."""

    def __init__(
        self,
        dataset,
        *,
        local_batch_size: int,
        sharding=None,
        shuffle: bool = False,
        num_batches=None,
        num_workers: int = 0,
        seed: int = 0,
        framework: str = "jax",
        rank: int = 0,
        world_size: int = 1,
        prefetch: int = 2,
    ):
        import torch

        self._framework = framework
        self._sharding = sharding
        self._prefetch: _Prefetch | None = None
        self._prefetch_depth = prefetch
        self._num_batches = num_batches
        if len(dataset) < local_batch_size * world_size:
            raise ValueError(
                f"dataset has {len(dataset)} samples, fewer than the global batch size {local_batch_size * world_size}"
            )
        generator = torch.Generator()
        generator.manual_seed(seed)
        # The same seeded global batches for any number of ranks; each rank loads its slice of every batch, so
        # N ranks train on exactly the batches one process would.
        sampler = GlobalBatchSampler(len(dataset), local_batch_size, rank, world_size, shuffle=shuffle, seed=seed)
        self._loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=num_workers,
            collate_fn=_collate,
            generator=generator,
            multiprocessing_context="spawn" if num_workers > 0 else None,
            persistent_workers=num_workers > 0,
        )
        self._sampler = sampler

    def _numpy_batches(self):
        n, epoch = 0, 0
        while True:
            self._sampler.set_epoch(epoch)
            for batch in self._loader:
                if self._num_batches is not None and n >= self._num_batches:
                    return
                yield batch
                n += 1
            epoch += 1

    def __iter__(self):
        self._prefetch = _Prefetch(self._numpy_batches(), depth=self._prefetch_depth)
        try:
            for batch in self._prefetch:
                yield self._convert(batch)
        finally:
            self._prefetch.close()

    @property
    def data_wait_s(self) -> float:
        return self._prefetch.wait_s if self._prefetch is not None else 0.0

    def _convert(self, batch):
        if self._framework == "pytorch":  # no jax on the PyTorch path
            import torch

            from openpi.shared.tree import tree_map

            return tree_map(torch.as_tensor, batch)
        import jax

        if self._sharding is None:
            return jax.tree.map(jax.numpy.asarray, batch)
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(self._sharding, x), batch)


def create_data_loader(
    config,
    *,
    sharding=None,
    shuffle: bool = False,
    num_batches: int | None = None,
    skip_norm_stats: bool = False,
    framework: Literal["jax", "pytorch"] = "jax",
    rank: int = 0,
    world_size: int = 1,
) -> DataLoaderImpl:
    data_config = config.data.create(config.assets_dirs, config.model)
    dataset = create_torch_dataset(
        data_config, config.model.action_horizon, config.model, frame_cache=config.frame_cache
    )
    dataset = transform_dataset(dataset, data_config, skip_norm_stats=skip_norm_stats)
    if config.batch_size % world_size:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by world_size={world_size}")
    loader = TorchDataLoader(
        dataset,
        local_batch_size=config.batch_size // world_size,
        sharding=sharding,
        shuffle=shuffle,
        num_batches=num_batches,
        num_workers=config.num_workers,
        seed=config.seed,
        framework=framework,
        rank=rank,
        world_size=world_size,
    )
    return DataLoaderImpl(data_config, loader)
