"""The decoded-frame cache serves exactly the samples the LeRobot path does, and the prefetching loader is exact."""

import json

import numpy as np
import pytest

from openpi.training import data_loader as _data_loader
from openpi.training import frame_cache

H = 5


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path_factory.mktemp("lerobot") / "cache_test"
    feats = {
        "observation.images.top": {"dtype": "video", "shape": (24, 32, 3), "names": ["height", "width", "channel"]},
        "observation.state": {"dtype": "float32", "shape": (3,), "names": None},
        "observation.environment_state": {"dtype": "float32", "shape": (7,), "names": None},
        "action": {"dtype": "float32", "shape": (2,), "names": None},
    }
    ds = LeRobotDataset.create("cache_test", fps=50, features=feats, root=root, use_videos=True, vcodec="h264")
    rng = np.random.default_rng(0)
    for ep, length in enumerate((9, 7)):
        for t in range(length):
            ds.add_frame(
                {
                    "observation.images.top": rng.integers(0, 255, (24, 32, 3), dtype=np.uint8),
                    "observation.state": np.full(3, 10 * ep + t, np.float32),
                    "observation.environment_state": rng.normal(size=7).astype(np.float32),
                    "action": np.array([ep, t], np.float32),
                    "task": f"task {ep}",
                }
            )
        ds.save_episode()
    ds.finalize()
    return root


def test_cache_matches_lerobot_samples(dataset_root, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    reference = _data_loader._LeRobotSamples(
        LeRobotDataset(
            "cache_test",
            root=dataset_root,
            delta_timestamps={"action": [t / 50 for t in range(H)]},
            video_backend="torchcodec",
        ),
        prompt_from_task=True,
    )
    cache_dir = tmp_path / "cache"
    frame_cache.build(LeRobotDataset("cache_test", root=dataset_root), cache_dir, ["action"], H)
    assert json.loads((cache_dir / "meta.json").read_text())["num_frames"] == 16
    assert not list(tmp_path.glob("cache.tmp-*"))  # written atomically
    cached = frame_cache.CachedLeRobotSamples(cache_dir, prompt_from_task=True)
    assert len(cached) == len(reference) == 16
    for i in range(16):
        want, got = reference[i], cached[i]
        np.testing.assert_array_equal(got["observation.images.top"], want["observation.images.top"])
        assert got["observation.images.top"].dtype == np.uint8 and got["observation.images.top"].shape == (24, 32, 3)
        for key in ("observation.state", "observation.environment_state", "action", "action_is_pad", "episode_index"):
            np.testing.assert_array_equal(got[key], np.asarray(want[key]), err_msg=f"{key} at {i}")
        assert got["prompt"] == want["prompt"] == want["task"]
    # Chunks never cross an episode boundary: the last frame of episode 0 repeats its own action.
    np.testing.assert_array_equal(cached[8]["action"], np.tile([0, 8], (H, 1)))
    with pytest.raises(IndexError):
        cached[16]


def test_fingerprint_changes_with_the_dataset(dataset_root):
    meta = dataset_root / "meta"
    a = frame_cache._fingerprint(meta, ["action"], H)
    assert a == frame_cache._fingerprint(meta, ["action"], H)
    assert a != frame_cache._fingerprint(meta, ["action"], H + 1)


def test_prefetching_loader_yields_the_same_batches_and_counts_waiting():
    class Slow:
        def __len__(self):
            return 12

        def __getitem__(self, i):
            return {"x": np.array([i], np.float32)}

    def batches(prefetch):
        loader = _data_loader.TorchDataLoader(
            Slow(), local_batch_size=4, shuffle=True, num_batches=6, seed=3, framework="pytorch", prefetch=prefetch
        )
        out = [b["x"].numpy().ravel().tolist() for b in loader]
        return out, loader.data_wait_s

    eager, _ = batches(1)
    prefetched, waited = batches(3)
    assert prefetched == eager and len(eager) == 6
    assert waited >= 0.0


def test_prefetch_reraises_loader_errors():
    def broken():
        yield 1
        raise RuntimeError("decode failed at frame 7")

    it = _data_loader._Prefetch(broken(), depth=2)
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="frame 7"):
        next(it)
