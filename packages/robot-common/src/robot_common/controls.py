"""Operator controls and live progress for the collection loop.

Keys (terminal in cbreak mode, no Enter needed; Ctrl-C still works):
    Enter / space   start the next episode; while recording: stop and save it early
    d               while recording: discard it; between episodes: discard the episode just saved
    r               discard and re-record (starts again at once, no start key)
    q               finish the session (finished episodes are saved; the one being recorded is dropped)

`Controls("auto")` starts every episode by itself (after `reset_seconds`), which is what --sim and tests use; it
still obeys keys when a key source is given. `Controls` reads keys from any object with
`read(timeout) -> str | None`, so tests drive it with scripted keys.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import select
import shutil
import signal
import sys
import termios
import threading
import time
import tty
from typing import Protocol

logger = logging.getLogger("robot_common.controls")


class Event(enum.Enum):
    START = "start"  # Enter/space between episodes (or automatically)
    STOP = "stop"  # Enter/space while recording: save it now
    DISCARD = "discard"
    RERECORD = "rerecord"
    QUIT = "quit"


_KEYS = {"\n": "toggle", "\r": "toggle", " ": "toggle", "d": Event.DISCARD, "r": Event.RERECORD, "q": Event.QUIT}


class KeySource(Protocol):
    def read(self, timeout: float) -> str | None:
        """One key press, or None when none arrives within `timeout` seconds."""


class TerminalKeys:
    """Single key presses from a terminal: cbreak mode while inside `with` (restored on exit, also on errors).
    Keeps ISIG, so Ctrl-C still raises KeyboardInterrupt."""

    def __init__(self, stream=None):
        self._stream = stream if stream is not None else sys.stdin
        self._saved = None

    @staticmethod
    def available(stream=None) -> bool:
        stream = stream if stream is not None else sys.stdin
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    def __enter__(self):
        fd = self._stream.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            termios.tcsetattr(self._stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self, timeout: float) -> str | None:
        fd = self._stream.fileno()
        ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
        if not ready:
            return None
        data = os.read(fd, 1)
        return data.decode(errors="ignore") if data else None


class Controls:
    """Turns key presses into `Event`s. mode "keys": wait for Enter/space before each episode; "auto": start
    each episode after `reset_seconds` (the first at once)."""

    def __init__(self, mode: str = "auto", keys: KeySource | None = None, *, reset_seconds: float = 0.0):
        if mode not in ("auto", "keys"):
            raise ValueError(f"--controls must be 'auto' or 'keys', got {mode!r}")
        if mode == "keys" and keys is None:
            raise ValueError("keys mode needs a key source (a terminal on stdin)")
        if reset_seconds < 0:
            raise ValueError(f"--reset-seconds must be >= 0, got {reset_seconds}")
        self.mode, self.keys, self.reset_seconds = mode, keys, reset_seconds
        self._started = False

    def __enter__(self):
        """Terminal in cbreak mode (if keys come from one); SIGTERM ends the session like Ctrl-C (finished
        episodes are merged, the terminal restored)."""
        self._old_term = None
        if threading.current_thread() is threading.main_thread():
            self._old_term = signal.signal(signal.SIGTERM, _terminate)
        if hasattr(self.keys, "__enter__"):
            self.keys.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            if hasattr(self.keys, "__exit__"):
                self.keys.__exit__(*exc)
        finally:
            if self._old_term is not None:
                signal.signal(signal.SIGTERM, self._old_term)

    def _event(self, key: str | None, recording: bool) -> Event | None:
        ev = _KEYS.get(key.lower() if key and key.strip() else key)
        if ev == "toggle":
            return Event.STOP if recording else Event.START
        return ev

    def poll(self) -> Event | None:
        """While recording (non-blocking): STOP, DISCARD, RERECORD, QUIT or None."""
        if self.keys is None:
            return None
        return self._event(self.keys.read(0.0), recording=True)

    def wait_start(self) -> Event:
        """Between episodes: START, QUIT, or DISCARD / RERECORD (of the episode just saved)."""
        first, self._started = not self._started, True
        if self.mode == "auto":
            deadline = time.monotonic() + (0.0 if first else self.reset_seconds)
            while True:
                left = deadline - time.monotonic()
                if self.keys is not None:
                    ev = self._event(self.keys.read(max(0.0, min(left, 0.1))), recording=False)
                    if ev is not None:
                        return ev
                elif left > 0:
                    time.sleep(left)
                if left <= 0:
                    return Event.START
        while True:
            ev = self._event(self.keys.read(0.1), recording=False)
            if ev is not None:
                return ev


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def make_controls(mode: str | None, *, sim: bool, reset_seconds: float = 0.0, stdin=None) -> Controls:
    """`mode` None: keys on a real robot with a terminal, auto otherwise. Keys without a terminal fall back to
    auto (with a warning)."""
    tty_ok = TerminalKeys.available(stdin)
    if mode is None:
        mode = "keys" if (tty_ok and not sim) else "auto"
    if mode == "keys" and not tty_ok:
        logger.warning("--controls keys needs a terminal on stdin; recording with --controls auto")
        mode = "auto"
    keys = TerminalKeys(stdin) if tty_ok else None
    return Controls(mode, keys, reset_seconds=reset_seconds)


@dataclasses.dataclass
class EpisodeStats:
    frames: int
    seconds: float
    overruns: int
    """Steps whose work took longer than the period (the schedule slipped)."""
    kept: bool
    """Saved and counted (not discarded, not rejected)."""
    timing: object = None
    """robot_common.timing.EpisodeTiming of the attempt."""
    rejected: bool = False
    """Saved but kept aside, not merged: taken off the dataset's rate (robot_common.timing)."""

    @property
    def fps(self) -> float:
        achieved = getattr(self.timing, "achieved_fps", None)
        if achieved is not None:
            return achieved
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclasses.dataclass
class CollectStats:
    target_fps: float
    num_episodes: int
    attempts: list[EpisodeStats] = dataclasses.field(default_factory=list)
    dataset: object = None
    """Dataset dir after the merge (None if nothing was recorded)."""

    @property
    def kept(self) -> list[EpisodeStats]:
        return [a for a in self.attempts if a.kept]

    @property
    def episodes_kept(self) -> int:
        return len(self.kept)

    @property
    def episodes_rejected(self) -> int:
        return sum(a.rejected for a in self.attempts)

    @property
    def episodes_discarded(self) -> int:
        return len(self.attempts) - self.episodes_kept - self.episodes_rejected

    @property
    def frames(self) -> int:
        return sum(a.frames for a in self.kept)

    @property
    def mean_fps(self) -> float:
        """Frames per second over the kept episodes (each episode's rate weighted by its duration)."""
        secs = sum(a.frames / a.fps if a.fps > 0 else a.seconds for a in self.kept)
        return self.frames / secs if secs > 0 else 0.0

    @property
    def overruns(self) -> int:
        return sum(a.overruns for a in self.attempts)

    def summary(self) -> str:
        rejected = (
            f", REJECTED {self.episodes_rejected} for their timing (kept aside, not merged)"
            if self.episodes_rejected
            else ""
        )
        return (
            f"kept {self.episodes_kept} episodes ({self.frames} frames){rejected}, discarded "
            f"{self.episodes_discarded}; {self.mean_fps:.1f} fps achieved (target {self.target_fps:g}), "
            f"{self.overruns} overrun steps"
        )


class Progress:
    """One status line on a terminal (`\\r`-updated, at most `hz` times a second); on a non-terminal only the
    notes (one line per episode) are written."""

    def __init__(self, stream=None, *, hz: float = 4.0, live: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.live = TerminalKeys.available(self.stream) if live is None else live
        self._period, self._last, self._width = 1.0 / hz, -1e9, 0

    def status(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not self.live or (not force and now - self._last < self._period):
            return
        self._last = now
        text = text[: shutil.get_terminal_size().columns - 1]  # a wrapped line could not be redrawn with \r
        self.stream.write("\r" + text.ljust(self._width))
        self._width = len(text)
        self.stream.flush()

    def note(self, text: str) -> None:
        """A permanent line (clears the status line first)."""
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()
