"""Round-trip latency of a typical observation through our client + server (echo policy), side by side with a
bare websocket echo of the same bytes. Prints a markdown table.

Observation: three 224x224x3 uint8 images + 14-d state; reply: 50x14 float32 actions.
Both servers run together in a child process (as on a robot, client and server never share a GIL) and the client
alternates blocks of round trips between them, so background load on the machine hits both paths alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time

import numpy as np
import websockets.asyncio.server
import websockets.sync.client

from openpi.serving.websocket_policy_server import _read_in_large_chunks
from openpi.serving.websocket_policy_server import serve_in_thread
from openpi_client import base_policy
from openpi_client import msgpack_numpy
from openpi_client import websocket_client_policy

SESSIONS = 10
ROUNDS = 12
BLOCK = 20
WARMUP = 50


class Echo(base_policy.BasePolicy):
    def __init__(self):
        self.actions = np.zeros((50, 14), np.float32)

    def infer(self, obs):
        return {"actions": self.actions}


def observation():
    rng = np.random.default_rng(0)
    return {
        "state": rng.normal(size=14).astype(np.float32),
        "images": {
            k: rng.integers(0, 255, (224, 224, 3), dtype=np.uint8) for k in ("cam_high", "cam_left", "cam_right")
        },
        "prompt": "transfer the cube",
    }


def pct(xs):
    xs = np.asarray(xs) * 1000
    return np.percentile(xs, 50), np.percentile(xs, 99)


@contextlib.contextmanager
def bare_echo_server(tuned: bool = False):
    """A bare websockets server answering every frame with the packed reply (no msgpack work, no policy).
    `tuned`: with our server's socket read size (what the policy server sets on every connection)."""
    reply = msgpack_numpy.packb({"actions": np.zeros((50, 14), np.float32)})
    ready, box = threading.Event(), {}

    async def handler(ws):
        if tuned:
            _read_in_large_chunks(ws)
        async for _ in ws:
            await ws.send(reply)

    async def main():
        async with websockets.asyncio.server.serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as srv:
            box["port"], box["loop"], box["srv"] = srv.sockets[0].getsockname()[1], asyncio.get_running_loop(), srv
            ready.set()
            await srv.serve_forever()

    th = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    th.start()
    ready.wait()
    try:
        yield box["port"]
    finally:
        box["loop"].call_soon_threadsafe(box["srv"].close)
        th.join(timeout=5)


def serve_both() -> None:
    """Child process: our server and the bare echo servers; prints the ports, runs until stdin closes."""
    with serve_in_thread(Echo()) as (_, port), bare_echo_server() as bare_port, bare_echo_server(True) as tuned_port:
        print(port, bare_port, tuned_port, flush=True)
        sys.stdin.read()


def run(obs, rounds: int = ROUNDS, block: int = BLOCK) -> dict[str, list[float]]:
    """Round-trip times (s) of every path, measured in interleaved blocks against servers in one child process."""
    request = msgpack_numpy.packb(obs)
    packer = msgpack_numpy.Packer(autoreset=False)  # packs like the client: one buffer reused, sent as a view

    def send_packed(ws):
        try:
            packer.pack(obs)
            with packer.getbuffer() as message:
                ws.send(message)
        finally:
            packer.reset()

    child = subprocess.Popen(
        [sys.executable, "-W", "ignore", __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        port, bare_port, tuned_port = map(int, child.stdout.readline().split())
        client = websocket_client_policy.WebsocketClientPolicy("127.0.0.1", port)
        ours_ws = client._ws  # the same connection, driven with pre-packed bytes
        with (
            websockets.sync.client.connect(f"ws://127.0.0.1:{bare_port}", compression=None, max_size=None) as ws,
            websockets.sync.client.connect(f"ws://127.0.0.1:{tuned_port}", compression=None, max_size=None) as tuned_ws,
        ):
            paths = {
                # The acceptance comparison: our client + server vs a bare echo of the same bytes.
                "ours": lambda: client.infer(obs),
                "bare": lambda: (ws.send(request), ws.recv()),
                # Breakdown: our server without client-side msgpack work; bare echo with client-side msgpack work;
                # bare echo with our server's socket read size but no msgpack work.
                "ours_server_raw_bytes": lambda: (ours_ws.send(request), ours_ws.recv()),
                "bare_with_client_msgpack": lambda: (send_packed(ws), msgpack_numpy.unpackb(ws.recv())),
                "bare_with_our_socket_settings": lambda: (tuned_ws.send(request), tuned_ws.recv()),
            }
            times = {k: [] for k in paths}
            for _ in range(WARMUP):
                for f in paths.values():
                    f()
            for _ in range(rounds):
                for name, f in paths.items():
                    for _ in range(block):
                        t = time.perf_counter()
                        f()
                        times[name].append(time.perf_counter() - t)
        client.close()
    finally:
        child.stdin.close()
        child.wait(timeout=10)
    return times


def main():
    obs = observation()
    sessions = [run(obs) for _ in range(SESSIONS)]
    times = {k: [t for s in sessions for t in s[k]] for k in sessions[0]}
    ratios = sorted(pct(s["ours"])[0] / pct(s["bare"])[0] for s in sessions)
    (o50, o99), (b50, b99) = pct(times["ours"]), pct(times["bare"])
    size = len(msgpack_numpy.packb(obs))
    n = len(times["ours"])
    print(
        f"request {size / 1e3:.0f} kB, reply 50x14 float32, {SESSIONS} sessions (fresh server process and "
        f"connections each), {n} round trips per path in all, interleaved, loopback\n"
    )
    print("| path | p50 ms | p99 ms |")
    print("|---|---|---|")
    print(f"| bare websocket echo (same bytes) | {b50:.2f} | {b99:.2f} |")
    print(f"| openpi_client + WebsocketPolicyServer (echo policy) | {o50:.2f} | {o99:.2f} |")
    for name in ("ours_server_raw_bytes", "bare_with_client_msgpack", "bare_with_our_socket_settings"):
        p50, p99 = pct(times[name])
        print(f"| breakdown: {name.replace('_', ' ')} | {p50:.2f} | {p99:.2f} |")
    print(f"| ratio (ours / bare), all round trips | {o50 / b50:.2f}x | {o99 / b99:.2f}x |")
    tuned50, tuned99 = pct(times["bare_with_our_socket_settings"])
    print(f"| ratio (ours / bare with our socket settings) | {o50 / tuned50:.2f}x | {o99 / tuned99:.2f}x |")
    print(f"\np50 ratio per session: {', '.join(f'{r:.2f}x' for r in ratios)} (median {np.median(ratios):.2f}x)")


if __name__ == "__main__":
    serve_both() if "--serve" in sys.argv else main()
