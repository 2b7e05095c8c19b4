"""create_trained_policy on an upstream-format checkpoint dir -> Policy -> websocket server -> clients."""

import importlib.util
import json
import shutil
import sys

import numpy as np
import pytest

from openpi.policies import policy as _policy
from openpi.policies import policy_config
from openpi.policies.validation import ObservationError
from openpi.serving.websocket_policy_server import serve_in_thread
from openpi.training import config as _config
from openpi_client import msgpack_numpy
from openpi_client import websocket_client_policy


@pytest.fixture
def piper_ckpt(tiny_checkpoint):
    """The golden tiny pi0.5 params in a step dir with Piper (7-d) norm stats."""
    return tiny_checkpoint("pi05_piper_pick_cube", 7, horizon=10)


def _piper_obs(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "observation/state": rng.uniform(-1, 1, 7).astype(np.float32),
        "observation/images/base": rng.integers(0, 255, (480, 640, 3), dtype=np.uint8),
        "observation/images/wrist": rng.integers(0, 255, (240, 320, 3), dtype=np.uint8),
        "prompt": "pick up the cube",
    }


def test_policy_infers_robot_actions_and_is_deterministic_with_noise(piper_ckpt, openpi_data_home):
    cfg, step = piper_ckpt
    policy = policy_config.create_trained_policy(cfg, step)
    assert policy.metadata["action_dim"] == 7 and policy.metadata["action_horizon"] == 10
    first, steady = policy.warmup(cfg.model)
    assert first > 0 and steady > 0
    out = policy.infer(_piper_obs())
    assert out["actions"].shape == (10, 7) and np.isfinite(out["actions"]).all()
    assert out["policy_timing"]["infer_ms"] > 0
    noise = np.random.default_rng(1).normal(size=(10, 32)).astype(np.float32)
    a = policy.infer(_piper_obs(), noise=noise)["actions"]
    b = policy.infer(_piper_obs(), noise=noise)["actions"]
    np.testing.assert_array_equal(a, b)
    c = policy.infer(_piper_obs(seed=5), noise=noise)["actions"]
    assert not np.allclose(a, c)  # the observation matters
    # Without a prompt the config's default prompt is used ("pick up the cube").
    obs = _piper_obs()
    obs.pop("prompt")
    np.testing.assert_allclose(policy.infer(obs, noise=noise)["actions"], a, atol=1e-5)


def test_clear_errors(piper_ckpt, tmp_path, openpi_data_home):
    cfg, step = piper_ckpt
    with pytest.raises(FileNotFoundError, match="params/ .*model.safetensors"):
        policy_config.create_trained_policy(cfg, tmp_path)
    bare = tmp_path / "bare"
    shutil.copytree(step / "params", bare / "params")
    with pytest.raises(FileNotFoundError, match="norm_stats.json"):
        policy_config.create_trained_policy(cfg, bare)
    policy = policy_config.create_trained_policy(cfg, step)
    obs = _piper_obs()
    obs.pop("observation/images/wrist")
    with pytest.raises(ObservationError, match="observation/images/wrist: missing; the Piper policy needs"):
        policy.infer(obs)
    obs = _piper_obs()
    obs["observation/state"] = np.zeros(8, np.float32)
    with pytest.raises(ObservationError, match=r"observation/state: expected 7 finite numbers .* shape \[8\]"):
        policy.infer(obs)


def test_served_end_to_end_with_our_client_and_raw_bytes(piper_ckpt, openpi_data_home, tmp_path):
    import websockets.sync.client

    cfg, step = piper_ckpt
    policy = policy_config.create_trained_policy(cfg, step)
    recorder = _policy.PolicyRecorder(policy, tmp_path / "records")
    with serve_in_thread(recorder, metadata=policy.metadata) as (_, port):
        client = websocket_client_policy.WebsocketClientPolicy("127.0.0.1", port)
        assert client.get_server_metadata()["robot"] == "piper"
        out = client.infer(_piper_obs())
        assert out["actions"].shape == (10, 7)
        assert {"infer_ms"} <= set(out["server_timing"]) and "infer_ms" in out["policy_timing"]
        # A hand-built upstream-format request: plain msgpack of the same dict.
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}") as ws:
            ws.recv()
            ws.send(msgpack_numpy.packb(_piper_obs(2)))
            reply = msgpack_numpy.unpackb(ws.recv())
            assert reply["actions"].shape == (10, 7)
            bad = _piper_obs()
            del bad["observation/state"]
            ws.send(msgpack_numpy.packb(bad))
            assert "observation/state" in ws.recv()  # the traceback names the missing key
    rec = _policy.load_record(tmp_path / "records" / "step_0.npy")
    assert rec["outputs"]["actions"].shape == (10, 7)
    replay = policy.infer(rec["inputs"])
    assert replay["actions"].shape == (10, 7)
    assert json.dumps(rec["outputs"]["policy_timing"])


def test_aloha_inference_config_without_a_prompt(tiny_checkpoint, openpi_data_home, repo_root, monkeypatch):
    """pi05_aloha (serve --env ALOHA) keeps upstream's defaults: no default prompt, the client sends the task. A request
    without one gets an error naming the missing prompt and both fixes; --default-prompt fills it in; the server
    says so at start-up."""
    cfg, step = tiny_checkpoint("pi05_aloha", 14)
    rng = np.random.default_rng(0)
    obs = {
        "state": rng.uniform(-1, 1, 14).astype(np.float32),
        "images": {"cam_high": rng.integers(0, 255, (3, 224, 224), dtype=np.uint8)},
    }
    noise = rng.normal(size=(10, 32)).astype(np.float32)
    policy = policy_config.create_trained_policy(cfg, step)
    fixes = r"Prompt is required: send 'prompt' in the observation or set a default prompt \(--default-prompt"
    with pytest.raises(ValueError, match=fixes):
        policy.infer(obs)
    with serve_in_thread(policy, metadata=policy.metadata) as (_, port):
        client = websocket_client_policy.WebsocketClientPolicy("127.0.0.1", port)
        with pytest.raises(RuntimeError, match=fixes):  # the client receives the one-line error
            client.infer(obs)
    towel = policy.infer({**obs, "prompt": "fold the towel"}, noise=noise)["actions"]
    assert towel.shape == (10, 14)
    served = policy_config.create_trained_policy(cfg, step, default_prompt="fold the towel")
    np.testing.assert_allclose(served.infer(obs, noise=noise)["actions"], towel, atol=1e-5)

    spec = importlib.util.spec_from_file_location("serve_policy", repo_root / "scripts" / "serve_policy.py")
    serve_policy = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "serve_policy", serve_policy)  # its dataclasses look their module up
    spec.loader.exec_module(serve_policy)
    notice = serve_policy.prompt_notice(cfg, None)
    assert "config 'pi05_aloha' has no default prompt" in notice and "'prompt'" in notice
    assert '--default-prompt "<task>"' in notice
    assert serve_policy.prompt_notice(cfg, "fold the towel") is None
    assert serve_policy.DEFAULT_CHECKPOINT[serve_policy.EnvMode.ALOHA].config == "pi05_aloha"
    assert serve_policy.prompt_notice(_config.get_config("pi0_aloha_sim"), None) is None  # "Transfer cube"
