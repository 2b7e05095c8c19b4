"""Weight loaders against the upstream-written tiny pi0.5 params dir (../shared/golden/pi05_tiny/params)."""

import jax
import numpy as np
import pytest

from openpi.training import utils
from openpi.training import weight_loaders


@pytest.fixture(scope="module")
def golden_flat(golden_dir):
    with np.load(golden_dir / "pi05_tiny" / "params_flat.npz") as f:
        return {k: f[k] for k in f.files}


def _shape_tree(flat):
    return utils.unflatten_dict({k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in flat.items()})


def test_checkpoint_loader_restores_every_upstream_leaf(golden_dir, golden_flat):
    loader = weight_loaders.CheckpointWeightLoader(str(golden_dir / "pi05_tiny" / "params"))
    out = utils.flatten_dict(loader.load(_shape_tree(golden_flat)))
    assert set(out) == set(golden_flat)
    for k, v in golden_flat.items():
        np.testing.assert_array_equal(out[k], v, err_msg=k)


def test_checkpoint_loader_casts_to_model_dtype_and_keeps_lora_init(golden_dir, golden_flat):
    flat = {k: jax.ShapeDtypeStruct(v.shape, jax.numpy.bfloat16) for k, v in golden_flat.items()}
    flat["PaliGemma/llm/layers/attn/q_einsum/lora_a"] = jax.ShapeDtypeStruct((4, 8, 64, 2), np.float32)
    loader = weight_loaders.CheckpointWeightLoader(str(golden_dir / "pi05_tiny" / "params"))
    out = utils.flatten_dict(loader.load(utils.unflatten_dict(flat)))
    assert out["PaliGemma/llm/embedder/input_embedding"].dtype == jax.numpy.bfloat16
    assert isinstance(out["PaliGemma/llm/layers/attn/q_einsum/lora_a"], jax.ShapeDtypeStruct)
    partial = utils.flatten_dict(weight_loaders.loaded_leaves_only(utils.unflatten_dict(out)))
    assert "PaliGemma/llm/layers/attn/q_einsum/lora_a" not in partial
    assert len(partial) == len(golden_flat)


def test_checkpoint_loader_names_missing_and_mismatched_keys(golden_dir, golden_flat):
    path = str(golden_dir / "pi05_tiny" / "params")
    flat = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in golden_flat.items()}
    flat["action_head_extra/kernel"] = jax.ShapeDtypeStruct((3, 3), np.float32)
    with pytest.raises(KeyError, match="action_head_extra/kernel"):
        weight_loaders.CheckpointWeightLoader(path).load(utils.unflatten_dict(flat))
    flat.pop("action_head_extra/kernel")
    flat["action_out_proj/kernel"] = jax.ShapeDtypeStruct((64, 7), np.float32)
    with pytest.raises(ValueError, match=r"action_out_proj/kernel.*\(64, 32\).*\(64, 7\)"):
        weight_loaders.CheckpointWeightLoader(path).load(utils.unflatten_dict(flat))


def test_checkpoint_loader_drops_extra_keys_and_missing_path_is_clear(golden_dir, golden_flat, tmp_path):
    subset = {k: v for k, v in golden_flat.items() if k.startswith("action_")}
    out = weight_loaders.CheckpointWeightLoader(str(golden_dir / "pi05_tiny" / "params")).load(_shape_tree(subset))
    assert set(utils.flatten_dict(out)) == set(subset)
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        weight_loaders.CheckpointWeightLoader(str(tmp_path / "does_not_exist")).load(_shape_tree(subset))


def test_paligemma_loader_reads_npz_under_paligemma(tmp_path, golden_flat):
    llm = {k: v for k, v in golden_flat.items() if k.startswith("PaliGemma/llm/")}
    npz = tmp_path / "pt_224.npz"
    np.savez(npz, **{"params/" + k.removeprefix("PaliGemma/"): v * 0 + 1 for k, v in llm.items()})
    out = utils.flatten_dict(weight_loaders.PaliGemmaWeightLoader(str(npz)).load(_shape_tree(golden_flat)))
    for k in llm:
        assert np.all(out[k] == 1), k
    assert isinstance(out["action_in_proj/kernel"], jax.ShapeDtypeStruct)


def test_noop_loader_returns_input():
    tree = {"a": {"b": jax.ShapeDtypeStruct((2,), np.float32)}}
    assert weight_loaders.NoOpWeightLoader().load(tree) is tree
