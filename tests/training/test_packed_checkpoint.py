"""Packed checkpoints (bfloat16 params + manifest + assets): pack -> unpack -> serve, damage detection, and the
policy shipped in examples/aloha_sim/ matching its config."""

import json
import pathlib
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

from openpi.models import model as _model
from openpi.policies import policy_config
from openpi.training import config as _config
from openpi.transfer import packed as packed_checkpoint
from openpi.transfer.hub import TransferError

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "examples" / "aloha_sim" / "policy"


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}{k}/") if isinstance(v, dict) else {f"{prefix}{k}": np.asarray(v)})
    return out


def _piper_obs():
    rng = np.random.default_rng(0)
    return {
        "observation/state": rng.uniform(-1, 1, 7).astype(np.float32),
        "observation/images/base": rng.integers(0, 255, (224, 224, 3), dtype=np.uint8),
        "observation/images/wrist": rng.integers(0, 255, (224, 224, 3), dtype=np.uint8),
        "prompt": "pick up the cube",
    }


def test_pack_unpack_serves_the_rounded_params(tiny_checkpoint, tmp_path, openpi_data_home):
    cfg, step = tiny_checkpoint("pi05_piper_pick_cube", 7, horizon=10)
    packed = tmp_path / "packed"
    manifest = packed_checkpoint.pack(step, packed, config=cfg.name, note="test")
    assert manifest["step"] == 100 and manifest["config"] == "pi05_piper_pick_cube"
    assert sorted(p.name for p in packed.iterdir()) == ["assets", "manifest.json", "params.bf16.npz"]
    original = _flat(_model.restore_params(step / "params"))
    size = (packed / "params.bf16.npz").stat().st_size
    assert size < 0.6 * sum(v.nbytes for v in original.values())  # bf16 + zip: about half of fp32

    out = packed_checkpoint.unpack(packed, tmp_path / "unpacked")
    assert out == tmp_path / "unpacked" / "100"
    assert (out / "assets").is_dir() and not (tmp_path / "unpacked" / "tmp_100").exists()
    restored = _flat(_model.restore_params(out / "params"))
    assert restored.keys() == original.keys()
    for k, v in original.items():
        assert restored[k].dtype == v.dtype, k
        np.testing.assert_array_equal(restored[k], v.astype(ml_dtypes.bfloat16).astype(v.dtype), err_msg=k)
        np.testing.assert_allclose(restored[k], v, rtol=2**-8, atol=1e-30, err_msg=k)

    noise = np.random.default_rng(1).normal(size=(10, 32)).astype(np.float32)
    a = policy_config.create_trained_policy(cfg, step).infer(_piper_obs(), noise=noise)["actions"]
    b = policy_config.create_trained_policy(cfg, out).infer(_piper_obs(), noise=noise)["actions"]
    assert a.shape == b.shape == (10, 7)
    assert 0 < np.abs(a - b).max() < 0.05 * np.abs(a).max()  # rounded, so not identical, but close


def test_damage_and_bad_input_are_named(tiny_checkpoint, tmp_path, openpi_data_home):
    cfg, step = tiny_checkpoint("pi05_piper_pick_cube", 7, horizon=10)
    with pytest.raises(TransferError, match="no params/ dir"):
        packed_checkpoint.pack(step.parent, tmp_path / "p", config=cfg.name)
    packed = tmp_path / "packed"
    packed_checkpoint.pack(step, packed, config=cfg.name)
    with pytest.raises(TransferError, match="manifest.json is missing"):
        packed_checkpoint.unpack(step, tmp_path / "x")
    data = bytearray((packed / "params.bf16.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (packed / "params.bf16.npz").write_bytes(bytes(data))
    with pytest.raises(TransferError, match="sha256 differs"):
        packed_checkpoint.unpack(packed, tmp_path / "x")
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_cli_pack_and_unpack(tiny_checkpoint, tmp_path, openpi_data_home):
    _, step = tiny_checkpoint("pi05_piper_pick_cube", 7, horizon=10)
    transfer = [sys.executable, str(ROOT / "scripts" / "transfer.py")]
    cmd = [
        *transfer,
        "pack",
        "--ckpt",
        str(step),
        "--config-name",
        "pi05_piper_pick_cube",
        "--out",
        str(tmp_path / "p"),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "Packed" in res.stdout and "MB" in res.stdout
    cmd = [*transfer, "unpack", "--packed-dir", str(tmp_path / "p"), "--out", str(tmp_path / "c")]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "--policy.config=pi05_piper_pick_cube" in res.stdout and (tmp_path / "c" / "100" / "params").is_dir()
    # A dir that is not a packed checkpoint: exit 2 and one line naming the missing manifest, no traceback.
    res = subprocess.run(
        [*transfer, "unpack", "--packed-dir", str(step), "--out", str(tmp_path / "d")], capture_output=True, text=True
    )
    assert res.returncode == 2 and "manifest.json is missing" in res.stderr and "Traceback" not in res.stderr


def test_shipped_aloha_sim_policy_matches_its_config(tmp_path):
    """The policy `make demo` serves: under 5 MB, intact, and shaped like the registry config it names."""
    manifest = packed_checkpoint.read_manifest(SHIPPED)
    assert (SHIPPED / "params.bf16.npz").stat().st_size < 5e6
    cfg = _config.get_config(manifest["config"])
    assert cfg.name.startswith("pi0_aloha_sim_small")
    step = packed_checkpoint.unpack(SHIPPED, tmp_path / "ckpt")
    params = _model.restore_params(step / "params")
    cfg.model.load(params, remove_extra_params=False)  # raises naming any missing, extra or mis-shaped parameter
    assert sum(v.size for v in _flat(params).values()) == manifest["num_params"]
    norm = json.loads(next((step / "assets").glob("*/norm_stats.json")).read_text())["norm_stats"]
    assert len(norm["actions"]["mean"]) == 14
