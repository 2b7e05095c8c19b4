"""A policy that runs on a remote openpi policy server (websocket + msgpack)."""

from __future__ import annotations

import logging
import secrets
import socket
import ssl
import time

import websockets.exceptions
import websockets.sync.client

from openpi_client import _malloc
from openpi_client import base_policy as _base_policy
from openpi_client import msgpack_numpy

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets without its C extension
    from websockets.utils import apply_mask

logger = logging.getLogger("openpi_client")


SEND_BUFFER_BYTES = 4 * 1024 * 1024  # a whole observation fits the socket buffer: one sendmsg, no wait on the reader
CLOSE_TIMEOUT_S = 2.0  # close() waits this long for a hung server's close frame, then drops the TCP connection


def _connect(uri: str, **kwargs):
    """A long-lived connection (not a context manager); websockets >= 16 wants `legacy=True` said explicitly."""
    try:
        return websockets.sync.client.connect(uri, legacy=True, **kwargs)
    except TypeError:  # older websockets: no `legacy` flag, plain connect() already returns the connection
        return websockets.sync.client.connect(uri, **kwargs)


class WebsocketClientPolicy(_base_policy.BasePolicy):
    """Connects on construction (retrying while the server is not up) and reads the server metadata.

    `host` may be a bare host name/IP (-> ws://host) or a full `ws://` / `wss://` URI.
    `retry_timeout` bounds the wait for the server (None = wait forever, like upstream).
    """

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int | None = None,
        api_key: str | None = None,
        *,
        retry_interval: float = 5.0,
        retry_timeout: float | None = None,
    ) -> None:
        self._uri = host if host.startswith("ws") else f"ws://{host}"
        if port is not None:
            self._uri += f":{port}"
        self._api_key = api_key
        # Large images go out as views of their own memory (see _send_parts); the rest is packed normally.
        self._parts_packer = msgpack_numpy.PartsPacker()
        _malloc.keep_large_buffers()
        self._ws, self._server_metadata = self._wait_for_server(retry_interval, retry_timeout)
        self._send_parts_ok = _can_send_parts(self._ws)

    def get_server_metadata(self) -> dict:
        return self._server_metadata

    @property
    def uri(self) -> str:
        return self._uri

    def _wait_for_server(self, retry_interval: float, retry_timeout: float | None):
        logger.info("Waiting for server at %s...", self._uri)
        deadline = None if retry_timeout is None else time.monotonic() + retry_timeout
        headers = {"Authorization": f"Api-Key {self._api_key}"} if self._api_key else None
        while True:
            try:
                conn = _connect(
                    self._uri,
                    compression=None,
                    max_size=None,
                    additional_headers=headers,
                    open_timeout=30,
                    close_timeout=CLOSE_TIMEOUT_S,
                )
                metadata = msgpack_numpy.unpackb(conn.recv())
                _enlarge_send_buffer(conn)
                return conn, metadata
            except websockets.exceptions.InvalidStatus as e:
                code = e.response.status_code
                if code == 401:
                    raise PermissionError(
                        f"Server {self._uri} rejected the API key (HTTP 401): pass the server's --api-key as api_key."
                    ) from e
                raise
            except (ConnectionRefusedError, OSError) as e:
                if deadline is not None and time.monotonic() >= deadline:
                    raise ConnectionError(
                        f"No policy server at {self._uri} after {retry_timeout:.0f}s ({e}). Start it with "
                        "`make serve ...` / scripts/serve_policy.py and check host/port."
                    ) from e
                logger.info("Still waiting for server at %s (%s); retrying in %.1fs", self._uri, e, retry_interval)
                time.sleep(retry_interval)

    def infer(self, obs: dict) -> dict:
        parts = self._parts_packer.pack_parts(obs)
        if len(parts) > 1 and self._send_parts_ok and len(parts) < _MAX_IOV:
            _send_parts(self._ws, parts)
        else:
            self._ws.send(b"".join(parts))
        response = self._ws.recv()
        if isinstance(response, str):
            # The server sends its traceback as a text frame on error.
            raise RuntimeError(f"Error in inference server:\n{response}")
        return msgpack_numpy.unpackb_views(response)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        self._ws.close()


def _enlarge_send_buffer(conn) -> None:
    """Best effort: the kernel caps the size at net.core.wmem_max; a socket that refuses keeps its default."""
    sock = getattr(conn, "socket", None)
    if sock is not None:
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < SEND_BUFFER_BYTES:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        except OSError as e:
            logger.debug("Could not enlarge the send buffer: %s", e)


_MAX_IOV = 512  # well below the usual IOV_MAX (1024) of sendmsg


def _can_send_parts(conn) -> bool:
    """Whether `_send_parts` may write to this connection: plain TCP (not TLS), no negotiated extensions (they
    would transform the payload), and a websockets with the internals it uses. Fixed for the connection's life."""
    sock = getattr(conn, "socket", None)
    protocol = getattr(conn, "protocol", None)
    return (
        sock is not None
        and protocol is not None
        and hasattr(conn, "send_context")
        and not isinstance(sock, ssl.SSLSocket)
        and not getattr(protocol, "extensions", None)
    )


def _send_parts(conn, parts: list) -> None:
    """Send one binary message made of `parts` without joining them: one masked frame (RFC 6455 5.2), each part
    masked on its own (the 4-byte key rotated to the part's offset) and all written by a single `sendmsg`.

    Saves the two full copies websockets would make (join + frame assembly). Runs inside the connection's own
    send context (its lock and open-state check), so keepalive pings and close frames never interleave. Only for
    connections `_can_send_parts` accepts, with fewer than `_MAX_IOV` parts.
    """
    sock = conn.socket
    size = sum(len(p) for p in parts)
    mask = secrets.token_bytes(4)
    if size < 126:
        head = bytes((0x82, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x82, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x82, 0x80 | 127)) + size.to_bytes(8, "big")
    buffers = [head + mask]
    keys = mask + mask
    offset = 0
    for part in parts:
        r = offset & 3
        buffers.append(apply_mask(part, keys[r : r + 4]))
        offset += len(part)
    with conn.send_context():
        while buffers:
            sent = sock.sendmsg(buffers)
            while buffers and sent >= len(buffers[0]):
                sent -= len(buffers.pop(0))
            if sent:
                buffers[0] = memoryview(buffers[0])[sent:]
