"""Subprocess entry of test_models_torch_no_jax.py: with jax, flax, optax and orbax blocked in sys.modules, build a
torch pi0.5 from its config, save / load it, sample, run one training step through scripts/train_pytorch.py and serve
the trained checkpoint dir over a real websocket. Prints one JSON line of results."""

import sys

BLOCKED = ("jax", "jaxlib", "flax", "optax", "orbax", "orbax.checkpoint")
for _name in BLOCKED:
    sys.modules[_name] = None  # any `import jax` now raises ImportError

import json  # noqa: E402
import pathlib  # noqa: E402
import runpy  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from openpi.models_pytorch import loading  # noqa: E402
from openpi.models_pytorch import pi0_pytorch  # noqa: E402
from openpi.policies import policy_config  # noqa: E402
from openpi.serving import websocket_policy_server  # noqa: E402
from openpi.training import config as _config  # noqa: E402
from openpi_client import websocket_client_policy  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]


def main(out: pathlib.Path) -> dict:
    cfg = _config.get_config("debug_pi05")
    torch.manual_seed(0)
    model = pi0_pytorch.PI0Pytorch(cfg.model).eval()  # torch-native init from the config alone
    loading.save_pytorch_model(model, out / "built", precision="float32")
    loaded = loading.load_pytorch_model(cfg.model, out / "built")
    obs = pi0_pytorch.fake_observation(cfg.model, 2)
    noise = torch.randn(2, cfg.model.action_horizon, cfg.model.action_dim)
    a, b = model.sample_actions("cpu", obs, noise=noise), loaded.sample_actions("cpu", obs, noise=noise)
    result = {"reload_max_diff": float((a - b).abs().max()), "actions_shape": list(b.shape)}

    # One training step through the real command line (torch-native init, fake data, checkpoint at the end).
    sys.argv = ["train_pytorch.py", "debug_pi05", "--exp-name", "nojax", "--num-train-steps", "1", "--overwrite"]
    sys.argv += ["--checkpoint-base-dir", str(out / "ckpt")]
    runpy.run_path(str(REPO / "scripts" / "train_pytorch.py"), run_name="__main__")
    step_dir = out / "ckpt" / "debug_pi05" / "nojax" / "1"
    result["trained_files"] = sorted(p.name for p in step_dir.iterdir())

    # Serve the trained checkpoint dir and ask it for actions over a websocket.
    policy = policy_config.create_trained_policy(cfg, step_dir, pytorch_device="cpu")
    server = websocket_policy_server.WebsocketPolicyServer(policy, host="127.0.0.1", port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    deadline = time.monotonic() + 30
    while server.bound_port is None and time.monotonic() < deadline:
        time.sleep(0.05)
    client = websocket_client_policy.WebsocketClientPolicy(host="127.0.0.1", port=server.bound_port)
    rng = np.random.default_rng(0)
    h, w = cfg.model.image_resolution
    request = {
        "image": {k: rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for k in cfg.model.image_keys},
        "image_mask": {k: np.True_ for k in cfg.model.image_keys},
        "state": rng.uniform(-1, 1, cfg.model.action_dim).astype(np.float32),
        "tokenized_prompt": rng.integers(1, 1000, cfg.model.max_token_len).astype(np.int32),
        "tokenized_prompt_mask": np.ones(cfg.model.max_token_len, bool),
    }
    reply = client.infer(request)
    result["served_actions_shape"] = list(np.asarray(reply["actions"]).shape)
    result["served_finite"] = bool(np.isfinite(reply["actions"]).all())
    result["jax_modules_loaded"] = sorted(k for k in sys.modules if k.split(".")[0] in BLOCKED and sys.modules[k])
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(pathlib.Path(sys.argv[1]))), flush=True)
