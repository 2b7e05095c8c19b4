"""Convert a JAX (orbax) checkpoint to upstream openpi's PyTorch layout: model.safetensors + config.json + assets/.

    python scripts/convert_jax_model_to_pytorch.py --config-name pi05_piper_pick_cube \
        --checkpoint-dir checkpoints/pi05_piper_pick_cube/my_exp/29999 --output-path checkpoints/.../29999_torch
    make convert CONFIG=pi05_piper_pick_cube CKPT=checkpoints/.../29999 OUT=checkpoints/.../29999_torch

Unlike upstream's converter it copies `assets/` (the norm stats) from the checkpoint dir itself, picks the pi0 /
pi0.5 layout from the config (not from the path), merges LoRA adapters into the weights instead of dropping them,
and (by default) reads the written file back, runs both models on one fake observation and reports the max
difference (with --precision bfloat16 the file is bf16, so the difference is bf16-sized). The keys, shapes and
tensor operations are upstream's (docs/pytorch.md); `config.json` has upstream's five fields first.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import shutil
import time

import numpy as np
import tyro


@dataclasses.dataclass
class Args:
    config_name: str
    """Training config of the checkpoint (fixes pi0 vs pi0.5, variants, action dims)."""
    checkpoint_dir: str
    """Step dir containing params/ (and assets/); local or gs://."""
    output_path: str
    """Output dir for model.safetensors, config.json and assets/."""
    precision: str = "bfloat16"
    """bfloat16 (as upstream: norms and patch/position embeddings stay fp32) or float32."""
    verify: bool = True
    """Run JAX and PyTorch on one fake observation and report the max action difference."""


def convert(args: Args) -> dict:
    import jax
    import torch

    from openpi.models import model as _model
    from openpi.models_pytorch import convert as _convert
    from openpi.models_pytorch import loading
    from openpi.models_pytorch.pi0_pytorch import PI0Pytorch
    from openpi.shared import download
    from openpi.shared.tree import tree_map
    from openpi.training import config as _config

    train_config = _config.get_config(args.config_name)
    model_config = dataclasses.replace(train_config.model, dtype="float32")
    ckpt = pathlib.Path(download.maybe_download(args.checkpoint_dir))
    if not (ckpt / "params").is_dir():
        raise FileNotFoundError(f"{ckpt}/params not found: --checkpoint-dir must be a step dir with params/")
    start = time.time()
    params = _model.restore_params(ckpt / "params")
    state = _convert.jax_to_torch(params, model_config, merge=True)
    merged_config = _convert.merged_config(model_config)
    model = loading.build_on_meta(merged_config)
    model.load_state_dict(state, strict=True, assign=True)
    out = pathlib.Path(args.output_path)
    loading.save_pytorch_model(model, out, precision=args.precision)
    if (ckpt / "assets").is_dir():
        shutil.copytree(ckpt / "assets", out / "assets", dirs_exist_ok=True)
    else:
        logging.warning("%s has no assets/ (norm stats); copy them into %s/assets before serving", ckpt, out)
    report = {"seconds": time.time() - start, "output": str(out), "params": len(state)}
    if args.verify:
        jax_model = model_config.load(params)
        obs = model_config.fake_obs(1)
        noise = np.random.default_rng(0).normal(size=(1, model_config.action_horizon, model_config.action_dim))
        a_jax = np.asarray(jax_model.sample_actions(jax.random.key(0), obs, noise=noise.astype(np.float32)))
        ref = loading.load_pytorch_model(merged_config, out, precision="float32")  # what was written, read back
        assert isinstance(ref, PI0Pytorch)
        tobs = tree_map(lambda x: torch.as_tensor(np.asarray(x)), obs)
        a_t = ref.sample_actions("cpu", tobs, noise=torch.as_tensor(noise, dtype=torch.float32)).numpy()
        report["max_abs_diff_fp32"] = float(np.abs(a_jax - a_t).max())
    return report


def main(args: Args) -> None:
    report = convert(args)
    print(f"Wrote {report['output']} ({report['params']} tensors) in {report['seconds']:.1f}s")
    if "max_abs_diff_fp32" in report:
        print(
            f"JAX vs PyTorch (float32) max |actions| difference on a fake observation: {report['max_abs_diff_fp32']:.2e}"
        )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(tyro.cli(Args))
