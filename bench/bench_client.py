"""Round-trip latency of a typical observation through our client + server (echo policy), side by side with a
bare websocket echo of the same bytes. Prints a markdown table.

Observation: three 224x224x3 uint8 images + 14-d state; reply: 50x14 float32 actions.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import websockets.asyncio.server
import websockets.sync.client

from openpi.serving.websocket_policy_server import serve_in_thread
from openpi_client import base_policy
from openpi_client import msgpack_numpy
from openpi_client import websocket_client_policy

N = 300


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


def bench_ours(obs):
    with serve_in_thread(Echo()) as (_, port):
        client = websocket_client_policy.WebsocketClientPolicy("127.0.0.1", port)
        for _ in range(20):
            client.infer(obs)
        times = []
        for _ in range(N):
            t = time.perf_counter()
            client.infer(obs)
            times.append(time.perf_counter() - t)
        client.close()
    return times


def bench_bare(obs):
    request = msgpack_numpy.packb(obs)
    reply = msgpack_numpy.packb({"actions": np.zeros((50, 14), np.float32)})
    ready, port_box, stop = threading.Event(), {}, {}

    async def handler(ws):
        async for _ in ws:
            await ws.send(reply)

    async def main():
        async with websockets.asyncio.server.serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as srv:
            port_box["port"] = srv.sockets[0].getsockname()[1]
            stop["loop"], stop["srv"] = asyncio.get_running_loop(), srv
            ready.set()
            await srv.serve_forever()

    th = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    th.start()
    ready.wait()
    times = []
    with websockets.sync.client.connect(f"ws://127.0.0.1:{port_box['port']}", compression=None, max_size=None) as ws:
        for i in range(N + 20):
            t = time.perf_counter()
            ws.send(request)
            ws.recv()
            if i >= 20:
                times.append(time.perf_counter() - t)
    stop["loop"].call_soon_threadsafe(stop["srv"].close)
    return times


def main():
    obs = observation()
    ours, bare = bench_ours(obs), bench_bare(obs)
    (o50, o99), (b50, b99) = pct(ours), pct(bare)
    size = len(msgpack_numpy.packb(obs))
    print(f"request {size / 1e3:.0f} kB, reply 50x14 float32, {N} round trips each, loopback\n")
    print("| path | p50 ms | p99 ms |")
    print("|---|---|---|")
    print(f"| bare websocket echo (same bytes) | {b50:.2f} | {b99:.2f} |")
    print(f"| openpi_client + WebsocketPolicyServer (echo policy) | {o50:.2f} | {o99:.2f} |")
    print(f"| ratio (ours / bare) | {o50 / b50:.2f}x | {o99 / b99:.2f}x |")


if __name__ == "__main__":
    main()
