"""Norm stats and transforms against upstream's golden files (exact)."""

import numpy as np

from openpi import transforms as T
from openpi.shared import normalize


def test_running_stats_reproduce_upstream_norm_stats_json(golden_dir, tmp_path):
    d = np.load(golden_dir / "normalize.npz")
    stats = {"state": normalize.RunningStats(), "actions": normalize.RunningStats()}
    for i in range(4):
        stats["state"].update(d[f"batch{i}/state"])
        stats["actions"].update(d[f"batch{i}/actions"])
    result = {k: v.get_statistics() for k, v in stats.items()}
    for k in ("state", "actions"):
        for f in ("mean", "std", "q01", "q99"):
            expected = d[f"stats/{k}/{f}"]
            got = getattr(result[k], f)
            assert got.dtype == expected.dtype, (k, f)
            np.testing.assert_array_equal(got, expected)
    # The numpy-1 re-binning quirk: the outlier's bin, not ~2.6.
    assert result["state"].q99[0] == 24.994397309637073
    path = normalize.save(tmp_path / "asset", result)
    assert path.read_text() == (golden_dir / "norm_stats.json").read_text()
    assert (golden_dir / "pi0_tiny/assets/golden_tiny/norm_stats.json").read_text() == path.read_text()
    back = normalize.load(tmp_path / "asset")
    np.testing.assert_array_equal(back["actions"].q01, result["actions"].q01)


def test_transforms_match_upstream(golden_dir):
    d = np.load(golden_dir / "transforms.npz")
    stats = normalize.deserialize_json((golden_dir / "norm_stats.json").read_text())
    for use_q, name in ((False, "zscore"), (True, "quantile")):
        out = T.Normalize(stats, use_q)(
            {"state": d["normalize/in/state"], "actions": d["normalize/in/actions"], "prompt": "p"}
        )
        np.testing.assert_array_equal(out["state"], d[f"normalize/{name}/state"])
        np.testing.assert_array_equal(out["actions"], d[f"normalize/{name}/actions"])
        assert out["prompt"] == "p"
        np.testing.assert_array_equal(
            T.Normalize(stats, use_q)({"state": d["normalize/in/state_dim4"]})["state"],
            d[f"normalize/{name}/state_dim4"],
        )
        un = T.Unnormalize(stats, use_q)({"state": d["unnormalize/in/state"], "actions": d["unnormalize/in/actions"]})
        np.testing.assert_array_equal(un["state"], d[f"unnormalize/{name}/state"])
        np.testing.assert_array_equal(un["actions"], d[f"unnormalize/{name}/actions"])
    mask = T.make_bool_mask(6, -1, 6, -1)
    np.testing.assert_array_equal(mask, d["delta/mask"])
    state, actions = d["delta/in/state"], d["delta/in/actions"]
    delta = T.DeltaActions(mask)({"state": state.copy(), "actions": actions.copy()})["actions"]
    np.testing.assert_array_equal(delta, d["delta/delta_actions"])
    back = T.AbsoluteActions(mask)({"state": state.copy(), "actions": delta.copy()})["actions"]
    np.testing.assert_array_equal(back, d["delta/absolute_of_delta"])
    a32 = T.AbsoluteActions(mask)({"state": state.copy(), "actions": d["absolute/in/actions32"].copy()})["actions"]
    np.testing.assert_array_equal(a32, d["absolute/actions32"])
    pad = T.PadStatesAndActions(32)({"state": state.copy(), "actions": actions.copy()})
    np.testing.assert_array_equal(pad["state"], d["pad/state"])
    np.testing.assert_array_equal(pad["actions"], d["pad/actions"])


def test_repack_and_errors_name_the_field():
    import pytest

    rp = T.RepackTransform({"images": {"cam_high": "observation.images.top"}, "state": "observation.state"})
    out = rp({"observation.images.top": 1, "observation.state": 2, "extra": 3})
    assert out == {"images": {"cam_high": 1}, "state": 2}
    with pytest.raises(KeyError, match="observation.state"):
        rp({"observation.images.top": 1})
    with pytest.raises(ValueError, match="Prompt is required"):
        T.TokenizePrompt(tokenizer=None)({"state": np.zeros(3)})
