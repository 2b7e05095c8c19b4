"""Real websocket server + clients on loopback: protocol, errors, auth, limits, concurrency, retries."""

import asyncio
import base64
import contextlib
import json
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest
import websockets.asyncio.server
import websockets.sync.client

from openpi.serving.websocket_policy_server import serve_in_thread
from openpi_client import base_policy
from openpi_client import msgpack_numpy
from openpi_client import websocket_client_policy as wcp


class EchoPolicy(base_policy.BasePolicy):
    """Returns a (10, 14) chunk derived from the state, tagged with the request id."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self.calls = 0

    def infer(self, obs):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if "boom" in obs:
                raise ValueError("policy exploded on purpose")
            time.sleep(self.delay)
            self.calls += 1
            state = np.asarray(obs["state"], dtype=np.float32)
            return {"actions": np.tile(state, (10, 1)) + np.arange(10, dtype=np.float32)[:, None], "id": obs.get("id")}
        finally:
            self.active -= 1


def _obs(i=0):
    return {"state": np.full(14, i, np.float32), "image": np.zeros((224, 224, 3), np.uint8), "id": i}


def test_metadata_actions_and_timing():
    with serve_in_thread(EchoPolicy(), metadata={"action_horizon": 10, "env": "test"}) as (_, port):
        client = wcp.WebsocketClientPolicy("127.0.0.1", port)
        assert client.get_server_metadata() == {"action_horizon": 10, "env": "test"}
        out = client.infer(_obs(3))
        assert out["actions"].shape == (10, 14) and out["actions"].dtype == np.float32
        np.testing.assert_array_equal(out["actions"][:, 0], 3 + np.arange(10))
        assert set(out["server_timing"]) == {"infer_ms"}
        out2 = client.infer(_obs(4))
        assert out2["server_timing"]["prev_total_ms"] >= out["server_timing"]["infer_ms"]  # from the 2nd call on
        assert out2["id"] == 4
        client.close()


def test_hand_built_upstream_request_from_golden_bytes(golden_dir):
    case = next(
        c
        for c in json.loads((golden_dir / "msgpack_cases.json").read_text())["cases"]
        if c["name"] == "nested_observation"
    )
    raw = base64.b64decode(case["packed_b64"])

    class Inspect(base_policy.BasePolicy):
        def infer(self, obs):
            return {
                "actions": np.zeros((50, 14), np.float32),
                "keys": sorted(obs),
                "state_sum": float(obs["state"].sum()),
            }

    with serve_in_thread(Inspect()) as (_, port), websockets.sync.client.connect(f"ws://127.0.0.1:{port}") as ws:
        assert msgpack_numpy.unpackb(ws.recv()) == {}
        ws.send(raw)
        reply = msgpack_numpy.unpackb(ws.recv())
    assert reply["actions"].shape == (50, 14)
    assert "images" in reply["keys"] and "state" in reply["keys"]
    state_node = dict((k["value"], v) for k, v in case["object"]["items"])["state"]
    assert reply["state_sum"] == pytest.approx(float(np.sum(np.float32(state_node["values_c_order"]))), rel=1e-6)


def test_healthz_during_slow_inference():
    with serve_in_thread(EchoPolicy(delay=1.0)) as (_, port):
        client = wcp.WebsocketClientPolicy("127.0.0.1", port)
        t = threading.Thread(target=client.infer, args=(_obs(),))
        t.start()
        time.sleep(0.2)
        start = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200 and r.read() == b"OK\n"
        assert time.monotonic() - start < 0.5  # the event loop is not blocked by inference
        t.join()


def test_fast_policies_run_on_the_event_loop_slow_ones_in_a_worker_thread():
    class Where(base_policy.BasePolicy):
        def __init__(self):
            self.delay, self.threads = 0.0, []

        def infer(self, obs):
            time.sleep(self.delay)
            self.threads.append(threading.current_thread().name)
            return {"actions": np.zeros((2, 2), np.float32)}

    policy = Where()
    # A 10 ms threshold (default 2 ms): a trivial call preempted on a loaded 2-core machine still counts as fast.
    with serve_in_thread(policy, inline_infer_ms=10) as (_, port):
        client = wcp.WebsocketClientPolicy("127.0.0.1", port)
        for _ in range(3):
            client.infer(_obs())
        # First call is measured in the worker thread; after that a fast policy runs inline.
        assert policy.threads[0] != "policy-server" and policy.threads[1:] == ["policy-server"] * 2
        policy.delay = 0.05
        for _ in range(3):
            client.infer(_obs())
        # The slow call itself was still inline (not known to be slow yet); later ones go to the thread.
        assert policy.threads[3] == "policy-server"
        assert "policy-server" not in policy.threads[4:]
        client.close()


def test_api_key_enforced_at_handshake():
    with serve_in_thread(EchoPolicy(), api_key="s3cret") as (_, port):
        with pytest.raises(PermissionError, match="API key"):
            wcp.WebsocketClientPolicy("127.0.0.1", port, api_key="wrong")
        with pytest.raises(PermissionError):
            wcp.WebsocketClientPolicy("127.0.0.1", port)
        ok = wcp.WebsocketClientPolicy(f"ws://127.0.0.1:{port}", api_key="s3cret")
        assert ok.infer(_obs(1))["actions"].shape == (10, 14)


def test_policy_error_returns_one_line_and_server_keeps_serving():
    with serve_in_thread(EchoPolicy()) as (_, port):
        bad = wcp.WebsocketClientPolicy("127.0.0.1", port)
        with pytest.raises(RuntimeError, match="Error in inference server:\nValueError: policy exploded on purpose$"):
            bad.infer({"boom": True})
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}") as ws:
            ws.recv()
            ws.send(msgpack_numpy.packb({"boom": 1}))
            text = ws.recv()
            assert text == "ValueError: policy exploded on purpose"  # no traceback, no server paths
            with pytest.raises(websockets.exceptions.ConnectionClosedError) as info:
                ws.recv()
            assert info.value.rcvd.code == 1011
        good = wcp.WebsocketClientPolicy("127.0.0.1", port)
        assert good.infer(_obs(2))["id"] == 2


def test_debug_errors_sends_the_traceback():
    with serve_in_thread(EchoPolicy(), debug_errors=True) as (_, port):
        client = wcp.WebsocketClientPolicy("127.0.0.1", port)
        with pytest.raises(RuntimeError, match="(?s)Error in inference server.*Traceback.*policy exploded on purpose"):
            client.infer({"boom": True})


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("a text frame", "binary msgpack frame"),
        (b"\xc1\xc1\xc1", "not valid openpi msgpack"),
        (msgpack_numpy.packb([1, 2, 3]), "must be a msgpack map"),
        (msgpack_numpy.packb({"a": {"b": np.zeros(3, "<M8[s]")}}), "field 'a/b': dtype '<M8[s]' is a datetime"),
    ],
)
def test_malformed_requests_get_clear_errors(frame, message):
    policy = EchoPolicy()
    with serve_in_thread(policy, max_message_bytes=4096) as (_, port):
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}") as ws:
            ws.recv()
            ws.send(frame)
            reply = ws.recv()
            assert isinstance(reply, str) and message in reply
        client = wcp.WebsocketClientPolicy("127.0.0.1", port)
        assert client.infer({"state": np.zeros(14, np.float32)})["actions"].shape == (10, 14)
    assert policy.calls == 1


def test_concurrent_clients_are_serialized_and_get_their_own_replies():
    policy = EchoPolicy(delay=0.02)
    results: dict[int, list[bool]] = {}
    with serve_in_thread(policy) as (_, port):

        def worker(i):
            client = wcp.WebsocketClientPolicy("127.0.0.1", port)
            ok = []
            for _ in range(5):
                out = client.infer(_obs(i))
                ok.append(out["id"] == i and float(out["actions"][0, 0]) == i)
            results[i] = ok

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert results == {i: [True] * 5 for i in range(4)}
    assert policy.max_active == 1 and policy.calls == 20


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_client_waits_for_a_late_server_and_gives_up_with_a_clear_error():
    port = _free_port()
    with pytest.raises(ConnectionError, match="No policy server"):
        wcp.WebsocketClientPolicy("127.0.0.1", port, retry_interval=0.1, retry_timeout=0.3)

    box = {}

    def connect():
        box["client"] = wcp.WebsocketClientPolicy("127.0.0.1", port, retry_interval=0.1, retry_timeout=20)

    t = threading.Thread(target=connect)
    t.start()
    time.sleep(0.5)
    with serve_in_thread(EchoPolicy(), port=port, metadata={"late": True}):
        t.join(timeout=20)
        assert box["client"].get_server_metadata() == {"late": True}


def test_oversized_request_is_refused_by_the_websocket_layer():
    """A frame above --max-message-mb closes the connection with 1009 while it arrives; our client says why."""
    policy = EchoPolicy()
    with serve_in_thread(policy, max_message_bytes=64 * 1024) as (_, port):
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
            ws.recv()
            ws.send(b"\x00" * (64 * 1024 + 1))
            with pytest.raises(websockets.exceptions.ConnectionClosedError) as info:
                ws.recv()
            assert info.value.rcvd.code == 1009
        client = wcp.WebsocketClientPolicy("127.0.0.1", port)
        big = {"state": np.zeros(14, np.float32), "image": np.zeros((200, 200, 3), np.uint8)}
        with pytest.raises(RuntimeError, match="refused the request as too large.*--max-message-mb"):
            client.infer(big)
        client = wcp.WebsocketClientPolicy("127.0.0.1", port)
        assert client.infer({"state": np.zeros(14, np.float32)})["actions"].shape == (10, 14)
    assert policy.calls == 1


@contextlib.contextmanager
def _stock_server(handler):
    """A plain websockets server (not ours) in a thread, to see exactly what the client puts on the wire."""
    ready, box = threading.Event(), {}

    async def main():
        async with websockets.asyncio.server.serve(handler, "127.0.0.1", 0, max_size=None) as srv:
            box["port"], box["loop"], box["srv"] = srv.sockets[0].getsockname()[1], asyncio.get_running_loop(), srv
            ready.set()
            await srv.serve_forever()

    th = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    th.start()
    assert ready.wait(10)
    try:
        yield box["port"]
    finally:
        box["loop"].call_soon_threadsafe(box["srv"].close)
        th.join(timeout=10)


def test_client_frames_are_exactly_packb_of_each_observation():
    """Every frame the server receives is packb(obs) (upstream's bytes), also after a failed pack."""
    frames = []
    reply = msgpack_numpy.packb({"actions": np.zeros((2, 2), np.float32)})

    async def handler(ws):
        await ws.send(msgpack_numpy.packb({}))
        async for message in ws:
            frames.append(bytes(message))
            await ws.send(reply)

    rng = np.random.default_rng(1)
    big = {"image": np.arange(300_000, dtype=np.uint8).reshape(500, 600), "state": np.ones(7, np.float32)}
    many = {
        "images": {k: rng.integers(0, 255, (224, 224, 3), dtype=np.uint8) for k in "abc"},
        "odd": rng.normal(size=(1001, 17)),
        "wrist": rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)[::2],  # non-contiguous
        "prompt": "stack",
    }
    small = {"state": np.full(3, 2.5, np.float64), "prompt": "pick"}
    with _stock_server(handler) as port:
        client = wcp.WebsocketClientPolicy("127.0.0.1", port)
        for obs in (big, many, small):
            client.infer(obs)
        with pytest.raises(ValueError, match="Unsupported dtype"):
            client.infer({"bad": np.zeros(2, complex)})
        client.infer(small)
        client.close()
    assert frames == [msgpack_numpy.packb(o) for o in (big, many, small, small)]


def test_client_refuses_a_reply_above_its_limit_and_bad_metadata():
    big_reply = msgpack_numpy.packb({"actions": np.zeros((1024, 1024), np.float32)})  # 4 MiB

    async def handler(ws):
        await ws.send(msgpack_numpy.packb({}))
        async for _ in ws:
            await ws.send(big_reply)

    with _stock_server(handler) as port:
        client = wcp.WebsocketClientPolicy("127.0.0.1", port, max_reply_bytes=1 << 20)
        with pytest.raises(RuntimeError, match="above this client's max_reply_bytes"):
            client.infer({"state": np.zeros(3)})
        assert wcp.WebsocketClientPolicy("127.0.0.1", port).infer({})["actions"].shape == (1024, 1024)

    async def not_a_policy_server(ws):
        await ws.send("hello")

    with (
        _stock_server(not_a_policy_server) as port,
        pytest.raises(ConnectionError, match="did not send openpi policy-server metadata"),
    ):
        wcp.WebsocketClientPolicy("127.0.0.1", port, retry_timeout=1)
