"""Keep glibc from unmapping and re-faulting the large buffers of every request.

Each round trip allocates and frees several buffers of the observation's size (~0.5 MB for three 224x224 images).
With glibc's defaults such a buffer may be served by a fresh mmap, or freed memory may be trimmed from the heap,
so every request page-faults half a megabyte again: measured here as 0.7 ms extra per round trip in some processes
(bench/bench_client.py). Raising the mmap and trim thresholds keeps that memory in the heap for reuse.
Only glibc is touched, and only when asked: it changes how every allocation of the whole process behaves, so
`WebsocketClientPolicy(keep_large_buffers=True)` and `WebsocketPolicyServer(keep_large_buffers=True)` opt in
(`scripts/serve_policy.py` does, for its dedicated server process); OPENPI_NO_MALLOPT=1 turns even that off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD_BYTES = 64 * 1024 * 1024
_done: bool | None = None


def keep_large_buffers() -> bool:
    """Apply once per process; returns whether the thresholds are set (False off glibc or when opted out)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("OPENPI_NO_MALLOPT") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD_BYTES))
    return _done
