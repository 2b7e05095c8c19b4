"""A policy that runs on a remote openpi policy server (websocket + msgpack)."""

from __future__ import annotations

import logging
import time

import websockets.exceptions
import websockets.frames
import websockets.sync.client

from openpi_client import base_policy as _base_policy
from openpi_client import msgpack_numpy

logger = logging.getLogger("openpi_client")


CLOSE_TIMEOUT_S = 2.0  # close() waits this long for a hung server's close frame, then drops the TCP connection
DEFAULT_MAX_REPLY_BYTES = 16 * 1024 * 1024  # an action chunk is a few kB; the server's metadata frame too


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
        max_reply_bytes: int | None = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        """`max_reply_bytes`: a larger reply (or metadata frame) closes the connection (1009) and `infer` raises."""
        self._uri = host if host.startswith("ws") else f"ws://{host}"
        if port is not None:
            self._uri += f":{port}"
        self._api_key = api_key
        self._max_reply_bytes = max_reply_bytes
        # Packs into one buffer kept across requests (no new ~0.5 MB allocation per observation), sent as a view.
        self._packer = msgpack_numpy.Packer(autoreset=False)
        self._ws, self._server_metadata = self._wait_for_server(retry_interval, retry_timeout)

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
                    max_size=self._max_reply_bytes,
                    additional_headers=headers,
                    open_timeout=30,
                    close_timeout=CLOSE_TIMEOUT_S,
                )
                break
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
        return conn, self._read_metadata(conn)

    def _read_metadata(self, conn) -> dict:
        try:
            frame = conn.recv()
            if isinstance(frame, str):
                raise ValueError(f"got a text frame ({frame[:200]!r})")
            metadata = msgpack_numpy.unpackb(frame)
            if not isinstance(metadata, dict):
                raise ValueError(f"metadata must be a map, got {type(metadata).__name__}")
        except (ValueError, websockets.exceptions.ConnectionClosed) as e:
            conn.close()
            # Not retried: whatever answers there is not a policy server we can talk to.
            raise ConnectionError(f"{self._uri} did not send openpi policy-server metadata: {_describe(e)}") from e
        return metadata

    def infer(self, obs: dict) -> dict:
        try:
            self._packer.pack(obs)
            with self._packer.getbuffer() as message:
                self._ws.send(message)
        finally:
            self._packer.reset()
        try:
            response = self._ws.recv()
        except websockets.exceptions.ConnectionClosedError as e:
            if _closed_for_size(e):
                raise RuntimeError(f"Policy server {self._uri}: {_describe(e)}") from e
            raise
        if isinstance(response, str):
            # The server sends its error (one line, or a traceback with --debug-errors) as a text frame.
            raise RuntimeError(f"Error in inference server:\n{response}")
        try:
            reply = msgpack_numpy.unpackb(response)
        except ValueError as e:  # msgpack's own errors are ValueErrors too
            raise RuntimeError(f"Invalid reply from the policy server {self._uri}: {e}") from e
        if not isinstance(reply, dict):
            raise RuntimeError(f"Invalid reply from the policy server {self._uri}: a {type(reply).__name__}, not a map")
        return reply

    def reset(self) -> None:
        pass

    def close(self) -> None:
        self._ws.close()


def _closed_for_size(e: websockets.exceptions.ConnectionClosed) -> bool:
    return any(f is not None and f.code == websockets.frames.CloseCode.MESSAGE_TOO_BIG for f in (e.rcvd, e.sent))


def _describe(e: Exception) -> str:
    """A clear line for a connection closed because a message was too big (either side's limit)."""
    if isinstance(e, websockets.exceptions.ConnectionClosed) and _closed_for_size(e):
        if e.rcvd is None or e.rcvd_then_sent is False:  # we closed first: our limit
            return (
                f"the server's message was above this client's max_reply_bytes ({e.sent.reason if e.sent else e}); "
                "raise max_reply_bytes if the server really sends that much"
            )
        return (
            f"the server refused the request as too large ({e.rcvd.reason}); send smaller images (e.g. "
            "image_tools.resize_with_pad to 224x224) or restart the server with a larger --max-message-mb"
        )
    return str(e)
