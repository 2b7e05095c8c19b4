"""Wire fuzzing: no message a client can send crashes the policy server, no reply a server can send crashes the client.

Server side: a separate process (serving_fuzz_server.py) serves the tiny pi0.5 behind the Piper and the ALOHA input
transforms. A seeded generator sends it random msgpack values, random bytes, mutated valid observations, valid
observations with one field made wrong, and special frames (text, empty, oversized, the `|O` dtype that used to
segfault the server). Every reply must be a valid action chunk or a one-line error; after every case the process must
be alive and answer the websocket handshake with its metadata, and a good request must get a valid chunk after every
case that failed past the request checks (inside the policy), after every GOOD_EVERY-th case and at the end (a good
request after *every* case would run the model ~1000 times).

Client side: a hostile loopback server answers our client's requests with the same kinds of generated replies; the
client must return a map (whose arrays are then read) or raise a clear error, never crash.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import pathlib
import random
import subprocess
import sys
import threading
import time

import msgpack
import numpy as np
import pytest
import websockets.asyncio.server
import websockets.exceptions
import websockets.sync.client

from openpi_client import msgpack_numpy as mn
from openpi_client import websocket_client_policy as wcp

HORIZON = 10
SERVER_CASES = 1000  # split between the Piper and the ALOHA server
CLIENT_CASES = 1000
GOOD_EVERY = 100
MAX_MESSAGE_BYTES = 1 << 20
MAX_REPLY_BYTES = 1 << 18
ROBOTS = {"piper": 7, "aloha": 14}
SEED = 23

DTYPES_OK = ["<f4", "<f8", "<f2", "|u1", "|i1", "<i2", ">i2", "<i4", "<i8", "<u8", "|b1", "=f4", ">f8"]
DTYPES_BAD = [
    "|O",
    "|O8",
    "<c8",
    "<c16",
    "<U4",
    "|S3",
    "|V8",
    "<M8[s]",
    "<m8[ms]",
    "<f16",
    "f4,f4",
    "float32",
    "",
    "<i3",
]


# --- generators ---------------------------------------------------------------------------------------------------


def _image(rng: random.Random, chw: bool = False) -> np.ndarray:
    h, w = rng.randint(8, 40), rng.randint(8, 40)
    img = np.frombuffer(rng.randbytes(h * w * 3), np.uint8).reshape(h, w, 3)
    return np.ascontiguousarray(img.transpose(2, 0, 1)) if chw else img


def valid_obs(rng: random.Random, robot: str, rtc: bool | None = None) -> dict:
    dim = ROBOTS[robot]
    state = np.array([rng.uniform(-1, 1) for _ in range(dim)], np.float32)
    if robot == "piper":
        obs = {
            "observation/state": state,
            "observation/images/base": _image(rng),
            "observation/images/wrist": _image(rng),
        }
    else:
        images = {"cam_high": _image(rng, chw=rng.random() < 0.7)}
        if rng.random() < 0.3:
            images["cam_left_wrist"] = _image(rng, chw=True)
        obs = {"state": state, "images": images}
    if rng.random() < 0.8:
        obs["prompt"] = rng.choice(["pick up the cube", "", "transfer the cube", "ünïcødé ✓"])
    if rtc if rtc is not None else rng.random() < 0.3:
        # k = 0 (plain sampling): valid requests with k > 0 would add the RTC sampler's compile (tests/rtc runs it);
        # the wrong-field cases send every kind of bad prev_actions / inference_delay.
        obs["prev_actions"] = np.zeros((0, dim), np.float32)
        obs["inference_delay"] = 0
    return obs


def good_obs(robot: str) -> dict:
    return valid_obs(random.Random(robot), robot, rtc=False)


def hostile_array(rng: random.Random):
    dtype = rng.choice(DTYPES_BAD if rng.random() < 0.6 else DTYPES_OK)
    shape = [rng.choice([0, 1, 2, 3, 7, 2**31, 2**62, -1]) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.1:
        shape = rng.choice([None, "3", [1.5], [True], [[2]], [1] * 40])
    data = rng.randbytes(rng.choice([0, 1, 3, 8, 12, 16, 24, 56]))
    if rng.random() < 0.1:
        data = rng.choice(["text", 7, None, [1, 2]])
    if rng.random() < 0.3:
        return {
            b"__npgeneric__": True,
            b"data": rng.choice([1, -1, 2**63, 1.5, 1e300, True, "x", None]),
            b"dtype": dtype,
        }
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}


def random_value(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth > 6 or r < 0.35:
        return rng.choice(
            [
                None,
                True,
                rng.randint(-(2**63), 2**64 - 1),
                rng.choice([math.nan, math.inf, -math.inf, 1e308, -0.0, rng.uniform(-1e3, 1e3)]),
                "".join(rng.choice("ab/_ \u00e9\u2713") for _ in range(rng.randint(0, 12))),
                rng.randbytes(rng.randint(0, 16)),
            ]
        )
    if r < 0.55:
        return hostile_array(rng)
    if r < 0.65:
        return mn.pack_array(np.zeros([rng.randint(0, 4)] * rng.randint(0, 3), rng.choice(DTYPES_OK)))
    if r < 0.8:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    keys = ["state", "observation/state", "images", "prompt", "prev_actions", "inference_delay", "x", "cam_high"]
    return {rng.choice(keys): random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def mutate(rng: random.Random, data: bytes, structure: list[int] | None = None) -> bytes:
    """1-6 byte-level mutations; with `structure` (positions of msgpack headers, keys, dtypes, shapes) most of them
    hit those rather than pixel bytes, which would mostly give another valid observation."""
    m = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not m:
            break
        if structure and rng.random() < 0.8:
            p = min(rng.choice(structure), len(m) - 1)
        else:
            p = rng.randrange(len(m))
        op = rng.random()
        if op < 0.45:
            m[p] = rng.randrange(256)
        elif op < 0.6:
            m[p] ^= 1 << rng.randrange(8)
        elif op < 0.72:
            del m[p : p + rng.randint(1, 8)]
        elif op < 0.85:
            m[p:p] = rng.randbytes(rng.randint(1, 8))
        elif op < 0.93:
            m = m[:p]
        else:
            q = rng.randrange(len(m))
            m[p:p] = m[q : q + rng.randint(1, 32)]
    return bytes(m)


def _wrong_field(rng: random.Random, robot: str) -> dict:
    obs = valid_obs(rng, robot)
    dim = ROBOTS[robot]
    state_key = "observation/state" if robot == "piper" else "state"
    image_key = "observation/images/base" if robot == "piper" else "images"
    bad_states = [
        np.full(dim, np.nan, np.float32),
        np.r_[np.zeros(dim - 1, np.float32), np.inf],
        np.zeros(dim + 1, np.float32),
        np.zeros((1, dim), np.float32),
        np.zeros(0, np.float32),
        "0.1 0.2",
        [0.1] * (dim - 1) + ["x"],
        [[0.1], [0.2, 0.3]],
        {"a": 1},
        None,
        np.ones(dim, bool),
        hostile_array(rng),
    ]
    bad_images = [
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((8, 8), np.uint8),
        np.zeros((2, 8, 8, 3), np.uint8),
        np.zeros((8, 8, 3), np.int16),
        np.full((8, 8, 3), 200.0, np.float32),
        np.full((8, 8, 3), np.nan, np.float32),
        np.zeros((3000, 1, 3), np.uint8),
        np.zeros((0, 8, 3), np.uint8),
        "image",
        [1, 2, 3],
        hostile_array(rng),
    ]
    choice = rng.randrange(6)
    if choice == 0:
        obs[state_key] = rng.choice(bad_states)
    elif choice == 1:
        img = rng.choice(bad_images)
        if robot == "piper":
            obs[image_key] = img
        else:
            obs["images"] = rng.choice([{"cam_high": img}, {"cam_high": _image(rng), "cam_top": img}, {}, img, [img]])
    elif choice == 2:
        obs["prompt"] = rng.choice([7, None, b"bytes", ["pick"], "x" * 5000, np.float32(1)])
    elif choice == 3:
        obs["prev_actions"] = rng.choice(
            [
                np.zeros((3, dim + 1), np.float32),
                np.zeros((HORIZON + 1, dim), np.float32),
                np.full((2, dim), np.nan, np.float32),
                np.zeros(dim, np.float32),
                "actions",
                hostile_array(rng),
            ]
        )
    elif choice == 4:
        obs["prev_actions"] = np.zeros((3, dim), np.float32)
        obs["inference_delay"] = rng.choice([4, -1, 1.5, True, 2**70, "2", None, np.float32(1)])
    else:
        obs.pop(rng.choice([state_key, image_key, *(["observation/images/wrist"] if robot == "piper" else [])]))
    return obs


def _pack(obj) -> bytes:
    try:
        return mn.packb(obj)
    except (ValueError, TypeError, OverflowError):  # e.g. a value our packer refuses: send msgpack's own encoding
        return msgpack.packb(obj, use_bin_type=True, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


SEGFAULT_CASE = msgpack.packb({"state": {b"__ndarray__": True, b"data": b"\x00" * 8, b"dtype": "|O", b"shape": [1]}})


def _other_values(value):
    """The same structure with different array bytes (to tell structure from payload)."""
    if isinstance(value, dict):
        return {k: _other_values(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return 255 - value if value.dtype == np.uint8 else value + 1
    return value


def _mutated_obs(rng: random.Random, robot: str) -> bytes:
    obs = valid_obs(rng, robot)
    packed, other = mn.packb(obs), mn.packb(_other_values(obs))
    structure = [i for i in range(len(packed)) if packed[i] == other[i]]
    return mutate(rng, packed, structure)


def request_case(rng: random.Random, robot: str, i: int):
    """(kind, frame) of case i: a bytes frame, a str (text frame)."""
    if i == 0:
        return "object dtype", SEGFAULT_CASE
    r = rng.random()
    if r < 0.35:
        return "mutated", _mutated_obs(rng, robot)
    if r < 0.65:
        return "wrong field", _pack(_wrong_field(rng, robot))
    if r < 0.85:
        return "random value", msgpack.packb(random_value(rng), use_bin_type=True)
    if r < 0.955:
        return "random bytes", rng.randbytes(rng.randint(0, 300))
    if r < 0.96:
        return "valid", mn.packb(valid_obs(rng, robot))
    return "special", rng.choice(["a text frame", b"", b"\x00" * (MAX_MESSAGE_BYTES + 1), SEGFAULT_CASE])


# --- server side --------------------------------------------------------------------------------------------------


def _check_chunk(reply: dict, robot: str, *, finite: bool = True) -> None:
    """A valid action chunk. (A fuzzed but valid state may be finite and absurdly large: the model's answer to it
    need not be finite.)"""
    actions = reply["actions"]
    assert isinstance(actions, np.ndarray) and actions.shape == (HORIZON, ROBOTS[robot]), actions
    assert actions.dtype.kind == "f" and (not finite or np.isfinite(actions).all())
    assert reply["server_timing"]["infer_ms"] >= 0


class _Conn:
    """A websocket to one fuzz server, reopened after the server closes it (it does after every error)."""

    def __init__(self, port: int, proc: subprocess.Popen):
        self.port, self.proc, self.ws = port, proc, None
        self.handshakes = 0

    def open(self):
        if self.ws is None:
            assert self.proc.poll() is None, f"server process died (exit code {self.proc.returncode})"
            self.ws = websockets.sync.client.connect(
                f"ws://127.0.0.1:{self.port}", max_size=None, compression=None, open_timeout=30
            )
            metadata = mn.unpackb(self.ws.recv(timeout=30))  # the server is alive and sends its metadata
            assert metadata["action_horizon"] == HORIZON
            self.handshakes += 1
        return self.ws

    def exchange(self, frame):
        """Send one frame; returns ("chunk", reply) | ("error", text) | ("closed", code)."""
        ws = self.open()
        try:
            ws.send(frame)
            reply = ws.recv(timeout=60)
        except websockets.exceptions.ConnectionClosed as e:
            self.ws = None
            return "closed", e.rcvd.code if e.rcvd else None
        if isinstance(reply, str):
            with contextlib.suppress(websockets.exceptions.ConnectionClosed, TimeoutError):
                ws.recv(timeout=10)  # the server closes after an error
            ws.close()
            self.ws = None
            return "error", reply
        return "chunk", mn.unpackb(reply)

    def close(self):
        if self.ws is not None:
            self.ws.close()


PRE_MODEL_ERRORS = ("request ", "ObservationError: ")


def _good_request(conn: _Conn, robot: str) -> None:
    kind, reply = conn.exchange(mn.packb(good_obs(robot)))
    assert kind == "chunk", (kind, reply)
    _check_chunk(reply, robot)


@pytest.fixture
def fuzz_server(tiny_checkpoint, tmp_path):
    _, piper_step = tiny_checkpoint("pi05_piper_pick_cube", 7, horizon=HORIZON)
    _, aloha_step = tiny_checkpoint("debug_pi05_aloha_sim", 14, horizon=HORIZON)
    script = pathlib.Path(__file__).with_name("serving_fuzz_server.py")
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            *map(str, (piper_step, aloha_step, HORIZON, MAX_MESSAGE_BYTES, tmp_path / "jax")),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert len(line.split()) == 2, f"fuzz server did not start (exit code {proc.poll()}): {line!r}"
        yield proc, dict(zip(ROBOTS, map(int, line.split()), strict=True))
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_no_request_crashes_the_server(fuzz_server):
    proc, ports = fuzz_server
    conns = {robot: _Conn(port, proc) for robot, port in ports.items()}
    start = time.monotonic()
    for robot, conn in conns.items():  # compiles the model
        _good_request(conn, robot)
    warm = time.monotonic() - start
    rng = random.Random(SEED)
    outcomes = collections.Counter()
    seconds = collections.Counter()  # where the time goes
    past_checks = []
    for i in range(SERVER_CASES):
        robot = "piper" if i % 2 == 0 else "aloha"
        conn = conns[robot]
        kind, frame = request_case(rng, robot, i // 2)
        t = time.monotonic()
        outcome, reply = conn.exchange(frame)
        seconds[outcome] += time.monotonic() - t
        if outcome == "chunk":
            _check_chunk(reply, robot, finite=False)
            outcomes["chunk"] += 1
        elif outcome == "error":
            assert reply and "\n" not in reply and "Traceback" not in reply and len(reply) <= 1000, reply
            if reply.startswith(PRE_MODEL_ERRORS):
                outcomes["refused: " + reply.split(":")[0]] += 1
            else:
                outcomes["failed in the policy"] += 1
                past_checks.append((kind, reply))
        else:  # only an oversized frame may be cut off by the websocket layer
            assert outcome == "closed" and reply == 1009 and len(frame) > MAX_MESSAGE_BYTES, (kind, outcome, reply)
            outcomes["closed: too large"] += 1
        assert proc.poll() is None, f"server died on case {i} ({kind}): {frame[:200]!r}"
        t = time.monotonic()
        conn.open()  # alive: handshake + metadata
        seconds["reconnect"] += time.monotonic() - t
        if outcome == "error" and not reply.startswith(PRE_MODEL_ERRORS) or i % GOOD_EVERY == GOOD_EVERY - 1:
            t = time.monotonic()
            _good_request(conn, robot)
            seconds["good request"] += time.monotonic() - t
    for robot, conn in conns.items():
        _good_request(conn, robot)
        conn.close()
    took = time.monotonic() - start
    print(f"warm-up {warm:.1f}s, {SERVER_CASES} cases in {took - warm:.1f}s: {dict(outcomes)}")
    print("seconds spent:", {k: round(v, 1) for k, v in seconds.items()})
    assert outcomes["chunk"] >= 10  # the generator reaches the model ...
    assert outcomes["refused: request refused"] >= 50  # ... the decoder's refusals ...
    assert outcomes["refused: ObservationError"] >= 100  # ... and the observation checks
    # Every bad field is caught before the transforms and the model run.
    assert not past_checks, past_checks[:5]


# --- client side --------------------------------------------------------------------------------------------------


def reply_case(rng: random.Random, i: int):
    good = {"actions": np.zeros((HORIZON, 7), np.float32), "server_timing": {"infer_ms": 1.0}}
    if i == 0:
        return "object dtype", msgpack.packb({"actions": hostile_array(random.Random(0)) | {b"dtype": "|O"}})
    r = rng.random()
    if r < 0.35:
        return "mutated", mutate(rng, mn.packb(good))
    if r < 0.6:
        return "random value", msgpack.packb(random_value(rng), use_bin_type=True)
    if r < 0.75:
        return "hostile actions", msgpack.packb({"actions": hostile_array(rng)}, use_bin_type=True)
    if r < 0.85:
        return "random bytes", rng.randbytes(rng.randint(0, 300))
    if r < 0.93:
        return "valid", mn.packb(good)
    return "special", rng.choice(["an error text", b"", b"\x00" * (MAX_REPLY_BYTES + 1), mn.packb([1, 2])])


@contextlib.contextmanager
def _hostile_server(replies: collections.deque):
    """Sends the metadata, then answers every request with the next queued reply (bytes or text frame)."""
    ready, box = threading.Event(), {}

    async def handler(ws):
        await ws.send(replies.popleft())
        async for _ in ws:
            await ws.send(replies.popleft())

    async def main():
        async with websockets.asyncio.server.serve(handler, "127.0.0.1", 0, max_size=None, compression=None) as srv:
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


def _touch(value) -> None:
    """Read every array of a decoded reply (an object array over the sender's bytes would crash here)."""
    if isinstance(value, dict):
        for v in value.values():
            _touch(v)
    elif isinstance(value, list):
        for v in value:
            _touch(v)
    elif isinstance(value, (np.ndarray, np.generic)):
        np.asarray(value).tolist()
        repr(value)


def test_no_reply_crashes_the_client():
    rng = random.Random(SEED)
    replies: collections.deque = collections.deque()
    outcomes = collections.Counter()
    obs = {"observation/state": np.zeros(7, np.float32), "prompt": "pick"}
    metadata = mn.packb({"action_horizon": HORIZON})
    with _hostile_server(replies) as port:

        def connect(meta=metadata):
            replies.append(meta)
            return wcp.WebsocketClientPolicy("127.0.0.1", port, max_reply_bytes=MAX_REPLY_BYTES, retry_timeout=5)

        client = connect()
        for i in range(CLIENT_CASES):
            kind, frame = reply_case(rng, i)
            replies.append(frame)
            error = None
            try:
                reply = client.infer(obs)
            except RuntimeError as e:
                error = str(e)
            if error is not None:
                assert "Invalid reply" in error or "Error in inference server" in error or "max_reply_bytes" in error
                outcomes["refused"] += 1
                if "max_reply_bytes" in error:
                    client = connect()
                continue
            assert isinstance(reply, dict)
            _touch(reply)
            outcomes["decoded"] += 1
        # Hostile metadata on connect: a clear ConnectionError, or a map.
        for i in range(50):
            replies.clear()
            error = None
            try:
                connect(reply_case(rng, i + 1)[1]).close()
            except ConnectionError as e:
                error = str(e)
            if error is None:
                outcomes["metadata decoded"] += 1
            else:
                assert "did not send openpi policy-server metadata" in error
                outcomes["metadata refused"] += 1
    print(dict(outcomes))
    assert outcomes["decoded"] >= 50 and outcomes["refused"] >= 500
