"""Data-parallel loading: N ranks (DDP or JAX processes) together read exactly the global batches one process reads,
every epoch, for the real TorchDataLoader (workers off and on)."""

from __future__ import annotations

import numpy as np
import pytest

from openpi.training.data_loader import TorchDataLoader


class Indexed:
    def __len__(self):
        return 22

    def __getitem__(self, i):
        return {"i": np.array(i), "x": np.full(3, i, np.float32)}


def _batches(world_size: int, rank: int, *, batch: int = 4, n: int = 12, workers: int = 0) -> list[np.ndarray]:
    loader = TorchDataLoader(
        Indexed(),
        local_batch_size=batch // world_size,
        shuffle=True,
        num_batches=n,
        seed=7,
        framework="pytorch",
        rank=rank,
        world_size=world_size,
        num_workers=workers,
    )
    return [b["i"].numpy() for b in loader]


@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_split_the_single_process_global_batches(world_size):
    single = _batches(1, 0)
    ranks = [_batches(world_size, r) for r in range(world_size)]
    for step, global_batch in enumerate(single):
        np.testing.assert_array_equal(np.concatenate([r[step] for r in ranks]), global_batch)
    # 12 batches of 4 span three epochs of 22 samples (5 full batches each, last 2 dropped) with a new order each.
    epochs = [np.concatenate(single[e * 5 : e * 5 + 5]) for e in range(2)]
    assert all(len(set(e.tolist())) == 20 for e in epochs)
    assert not np.array_equal(epochs[0], epochs[1])


def test_worker_processes_do_not_change_the_order():
    np.testing.assert_array_equal(np.stack(_batches(2, 1, n=3, workers=1)), np.stack(_batches(2, 1, n=3)))


def test_global_batch_larger_than_the_dataset_is_refused():
    with pytest.raises(ValueError, match="global batch size 24"):
        TorchDataLoader(Indexed(), local_batch_size=12, rank=0, world_size=2, framework="pytorch")
