"""Synchronized grab: all cameras of one control step are read at about the same time.

Design: every camera gets one persistent daemon reader thread (created on its first grab, stopped when the camera
is garbage-collected); `grab()` hands each reader a `read()` at once and waits for all of them, so one step costs
the slowest camera's read, not the sum, and the frames belong to this step (nothing reads between steps, so no
stale frames and no CPU spent, and simulated cameras that read the robot's state work unchanged). A camera is
never read by two threads at once (after a timeout the next read queues behind the stuck one), and daemon threads
never keep the process alive on a stalled device. Each frame's timestamp is the monotonic time its `read()`
returned; their spread is the grab's skew. OpenCVCamera keeps a 1-frame driver buffer and RealSense hands out the
newest frame set, so a read returns a fresh frame rather than a backlog.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import queue
import threading
import time
import weakref

import numpy as np

logger = logging.getLogger("robot_common.cameras")

_WARN_EVERY_S = 5.0
_last_warning = 0.0
_READERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_READERS_LOCK = threading.Lock()


class Frames(dict):
    """{camera name: RGB frame} plus `timestamps` {name: time.monotonic() when its read returned} and `skew`
    (seconds between the first and the last frame of this grab)."""

    timestamps: dict[str, float]
    skew: float


class _Reader:
    """One daemon thread that runs the submitted calls of one camera in order."""

    def __init__(self, name: str):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, args=(self._queue,), name=f"camera-{name}", daemon=True).start()

    @staticmethod
    def _run(q: queue.SimpleQueue) -> None:
        while (job := q.get()) is not None:
            fut, fn = job
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as e:  # (handed to the caller)
                    fut.set_exception(e)

    def submit(self, fn) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((fut, fn))
        return fut


def _reader(name: str, cam) -> _Reader:
    with _READERS_LOCK:
        reader = _READERS.get(cam)
        if reader is None:
            reader = _READERS[cam] = _Reader(name)
            weakref.finalize(cam, reader._queue.put, None)  # stop the thread with the camera
        return reader


def _timed_read(cam) -> tuple[np.ndarray, float]:
    img = cam.read()
    return img, time.monotonic()


def grab(cameras: dict, *, timeout: float = 2.0, warn_skew: float = 0.05) -> Frames:
    """Read every camera concurrently and return their frames (a `Frames` dict with `.timestamps` and `.skew`).

    A camera whose read raises re-raises here (with its name); one that takes longer than `timeout` seconds
    raises TimeoutError. A skew above `warn_skew` seconds is logged (at most every 5 s)."""
    global _last_warning
    frames = Frames()
    frames.timestamps = {}
    futures = {name: _reader(name, cam).submit(functools.partial(_timed_read, cam)) for name, cam in cameras.items()}
    deadline = time.monotonic() + timeout
    for name, fut in futures.items():
        try:
            frames[name], frames.timestamps[name] = fut.result(timeout=max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"camera {name!r} gave no frame within {timeout:.1f} s (unplugged or stalled?)"
            ) from None
        except Exception as e:
            raise RuntimeError(f"camera {name!r}: {e}") from e
    ts = list(frames.timestamps.values())
    frames.skew = (max(ts) - min(ts)) if ts else 0.0
    if frames.skew > warn_skew and time.monotonic() - _last_warning > _WARN_EVERY_S:
        _last_warning = time.monotonic()
        logger.warning("camera frames of one step are %.0f ms apart (%s)", 1e3 * frames.skew, frames.timestamps)
    return frames
