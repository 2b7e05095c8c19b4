"""Websocket policy server, wire-compatible with upstream openpi.

Protocol: on connect the server sends the metadata (msgpack, binary frame). Then for every binary request frame
(a msgpack map of observation fields) it replies with the policy's action dict plus
`server_timing = {"infer_ms", "prev_total_ms"}`. On any error it sends a one-line error text (naming the bad field
for malformed requests; the full traceback only with `debug_errors=True`) as a *text* frame and closes the
connection with 1011; the server itself keeps serving other and later clients. `GET /healthz` answers `200 OK`.

Beyond upstream: optional API-key check at the handshake (401); a maximum request size enforced by the websocket
layer while the frame arrives (a larger frame closes the connection with 1009 before it is buffered); requests are
decoded by `msgpack_numpy.unpackb_views`, which refuses every dtype but bool / int / float and checks shapes, sizes,
depth and counts (see `docs/serving.md`, threat model); inference runs under a lock, so concurrent clients are
serialized. A slow policy (a real model) runs in a worker thread so the event loop (health checks, handshakes) stays
responsive; a policy that answers within `inline_infer_ms` (an echo or replay policy, a tiny model) runs directly on
the event loop, where the thread hop would cost more than the inference itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import http
import logging
import threading
import time
import traceback

import msgpack
import websockets.asyncio.server as _server
import websockets.exceptions
import websockets.frames
import websockets.http11

from openpi_client import base_policy as _base_policy
from openpi_client import msgpack_numpy

logger = logging.getLogger("openpi.serving")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Frames the websocket layer may queue per connection before it stops reading the socket (a client waits for each
# reply, so one is enough; websockets' default of 16 would let one client park 16 x max_size of memory).
MAX_QUEUED_FRAMES = 2
MAX_ERROR_CHARS = 1000
# asyncio reads a socket 256 kB at a time; a 450 kB observation then takes two reads and two parser passes.
# Reading up to 4 MiB per call takes a typical request in one (bench/bench_client.py: ~5% of the round trip).
READ_CHUNK_BYTES = 4 * 1024 * 1024


def _read_in_large_chunks(websocket) -> None:
    """Raise the transport's per-recv() size (asyncio's selector transport; other event loops are left alone)."""
    transport = getattr(websocket, "transport", None)
    if transport is not None and isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = max(transport.max_size, READ_CHUNK_BYTES)


class RequestError(ValueError):
    """A malformed request; the message names the problem and is sent to the client."""


def decode_request(message: bytes | str, *, max_message_bytes: int | None) -> dict:
    if isinstance(message, str):
        raise RequestError("request was a text frame; send the observation as a binary msgpack frame (packb(obs))")
    if max_message_bytes is not None and len(message) > max_message_bytes:
        raise RequestError(
            f"request is {len(message)} bytes, above the server limit of {max_message_bytes} bytes; send smaller "
            "images (e.g. resize_with_pad to 224x224 on the client) or restart the server with a larger "
            "--max-message-mb"
        )
    try:
        obs = msgpack_numpy.unpackb_views(message)
    except msgpack_numpy.DecodeError as e:
        raise RequestError(f"request refused: {e}") from e
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as e:
        raise RequestError(
            f"request is not valid openpi msgpack ({type(e).__name__}: {e}); use openpi_client.msgpack_numpy.packb"
        ) from e
    if not isinstance(obs, dict):
        raise RequestError(f"request must be a msgpack map of observation fields, got {type(obs).__name__}")
    return obs


class WebsocketPolicyServer:
    def __init__(
        self,
        policy: _base_policy.BasePolicy,
        host: str = "0.0.0.0",
        port: int | None = 8000,
        metadata: dict | None = None,
        api_key: str | None = None,
        max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES,
        inline_infer_ms: float = 2.0,
        debug_errors: bool = False,
    ) -> None:
        """`debug_errors`: send clients the full traceback of a failed request (default: one line)."""
        self._policy = policy
        self._host = host
        self._port = port
        self._metadata = metadata or {}
        self._api_key = api_key
        self._max_message_bytes = max_message_bytes
        self._debug_errors = debug_errors
        self._infer_lock = threading.Lock()
        self._inline_infer_s = inline_infer_ms / 1000
        # Slowest of the recent inference times; None until the first (threaded) call measured one.
        self._recent_infer_s: float | None = None
        self._server: _server.Server | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.bound_port: int | None = None
        self._metadata_bytes = msgpack_numpy.packb(self._metadata)

    def serve_forever(self) -> None:
        asyncio.run(self.run())

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with _server.serve(
            self._handler,
            self._host,
            self._port or 0,
            compression=None,
            max_size=self._max_message_bytes,
            max_queue=MAX_QUEUED_FRAMES,
            process_request=self._process_request,
        ) as server:
            self._server = server
            self.bound_port = server.sockets[0].getsockname()[1]
            logger.info("Policy server listening on %s:%d", self._host, self.bound_port)
            self._ready.set()
            await server.serve_forever()

    def shutdown(self) -> None:
        """Stop serving (thread-safe, idempotent: a second call after the loop ended is a no-op)."""
        if self._server is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed: the server is down
                self._loop.call_soon_threadsafe(self._server.close)

    def _process_request(self, connection, request: websockets.http11.Request):
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if self._api_key is not None:
            given = request.headers.get("Authorization", "")
            expected = f"Api-Key {self._api_key}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                logger.warning("Rejected connection from %s: bad or missing API key", connection.remote_address)
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "Invalid or missing API key\n")
        return None

    def _infer_unlocked(self, obs: dict) -> dict:
        start = time.monotonic()
        try:
            return self._policy.infer(obs)
        finally:
            took = time.monotonic() - start
            prev = self._recent_infer_s
            # Rises at once on a slow call, decays slowly: one slow inference sends the next ones to the thread.
            self._recent_infer_s = took if prev is None or took > prev else 0.9 * prev + 0.1 * took

    def _infer(self, obs: dict) -> dict:
        with self._infer_lock:
            return self._infer_unlocked(obs)

    async def _run_infer(self, obs: dict) -> dict:
        fast = self._recent_infer_s is not None and self._recent_infer_s < self._inline_infer_s
        if fast and self._infer_lock.acquire(blocking=False):
            try:
                return self._infer_unlocked(obs)
            finally:
                self._infer_lock.release()
        return await asyncio.to_thread(self._infer, obs)

    async def _handler(self, websocket: _server.ServerConnection) -> None:
        logger.info("Connection from %s opened", websocket.remote_address)
        _read_in_large_chunks(websocket)
        packer = msgpack_numpy.Packer()
        await websocket.send(self._metadata_bytes)
        prev_total_time = None
        while True:
            try:
                start = time.monotonic()
                message = await websocket.recv()
                obs = decode_request(message, max_message_bytes=self._max_message_bytes)
                infer_start = time.monotonic()
                action = await self._run_infer(obs)
                infer_time = time.monotonic() - infer_start
                if not isinstance(action, dict):
                    raise TypeError(f"policy.infer must return a dict, got {type(action).__name__}")
                action = dict(action)
                action["server_timing"] = {"infer_ms": infer_time * 1000}
                if prev_total_time is not None:
                    action["server_timing"]["prev_total_ms"] = prev_total_time * 1000
                await websocket.send(packer.pack(action))
                prev_total_time = time.monotonic() - start
            except websockets.exceptions.ConnectionClosed:
                logger.info("Connection from %s closed", websocket.remote_address)
                break
            except Exception as e:
                if isinstance(e, RequestError):
                    logger.warning("Bad request from %s: %s", websocket.remote_address, e)
                else:
                    logger.exception("Inference failed for %s", websocket.remote_address)
                text = traceback.format_exc() if self._debug_errors else error_line(e)
                with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                    await websocket.send(text)
                    await websocket.close(
                        code=websockets.frames.CloseCode.INTERNAL_ERROR,
                        reason="Internal server error. Error text in the previous frame.",
                    )
                break


def error_line(e: BaseException) -> str:
    """The one-line error a client gets by default: what went wrong, without the server's traceback."""
    if isinstance(e, RequestError):
        text = str(e)
    else:
        detail = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 else e
        text = f"{type(e).__name__}: {detail}"
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


@contextlib.contextmanager
def serve_in_thread(policy: _base_policy.BasePolicy, *, host: str = "127.0.0.1", port: int = 0, **kwargs):
    """Run a server in a daemon thread (tests, notebooks): `with serve_in_thread(p) as (server, port): ...`."""
    server = WebsocketPolicyServer(policy, host=host, port=port, **kwargs)
    errors: list[BaseException] = []

    def _run():
        try:
            server.serve_forever()
        except BaseException as e:  # surfaced to the caller below
            errors.append(e)
            server._ready.set()

    thread = threading.Thread(target=_run, daemon=True, name="policy-server")
    thread.start()
    if not server._ready.wait(timeout=30) or errors:
        raise RuntimeError(f"policy server failed to start: {errors[0] if errors else 'timeout'}")
    try:
        yield server, server.bound_port
    finally:
        server.shutdown()
        thread.join(timeout=10)
