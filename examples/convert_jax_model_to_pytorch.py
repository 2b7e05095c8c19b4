"""The seed's path of the JAX -> PyTorch converter; it lives in scripts/ here (`make convert`). Same flags:

    uv run examples/convert_jax_model_to_pytorch.py --config_name pi05_piper_pick_cube \
        --checkpoint_dir checkpoints/pi05_piper_pick_cube/my_exp/19999 --output_path checkpoints/.../19999_torch

runs scripts/convert_jax_model_to_pytorch.py with these arguments (it also copies assets/, the seed's manual step).
"""

import pathlib
import runpy
import sys

if __name__ == "__main__":
    script = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "convert_jax_model_to_pytorch.py"
    print(
        f"[examples] running {script.relative_to(script.parents[1])} (make convert CONFIG=.. CKPT=.. OUT=..)",
        file=sys.stderr,
    )
    sys.argv[0] = str(script)
    runpy.run_path(str(script), run_name="__main__")
