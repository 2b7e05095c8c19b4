"""Chunk executors: turn a chunk-predicting policy into one action per control step.

All of them are `BasePolicy`s whose `infer(obs)` is called once per control step (by the `Runtime` loop at the
robot's rate) and returns `{"actions": <one action>}`, so they drop in where `ActionChunkBroker` was used:

- `sync`: query, execute `execution_horizon` actions, query again (the control loop waits for every inference).
- `naive`: asynchronous; the next chunk is computed while the current one executes and replaces it on arrival,
  skipping the actions that were executed meanwhile (jumps between chunks when they disagree).
- `rtc`: real-time chunking (Black et al. 2025, Algorithm 1): like `naive`, but every request also carries the
  current chunk's not-yet-executed actions (`prev_actions`) and the estimated delay in steps (`inference_delay`,
  the max of recent measured delays), so the server inpaints the new chunk to agree with them.
- `ensemble`: temporal ensembling (ACT): chunks are requested back to back and each step executes the weighted
  mean of every chunk's prediction for it, w_i = exp(-m i), i = 0 the oldest.

If the next chunk is late and the current one runs out, the executor holds the last action (or, with
`on_late="slow"`, first stretches the tail of the chunk to half speed); it never jumps. If it has held for longer
than `max_hold_s` (the server died, hangs, or the network is gone), `infer` raises `PolicyServerLostError`: the
robot stays where the last command put it and the run ends with a clear error instead of waiting forever.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from openpi_client import base_policy as _base_policy
from openpi_client.rtc.metrics import DelayEstimator
from openpi_client.rtc.metrics import ExecutionMetrics

logger = logging.getLogger("openpi_client.rtc")

KINDS = ("rtc", "naive", "sync", "ensemble")
RETRY_AFTER_ERROR_S = 0.5
DEFAULT_MAX_HOLD_S = 5.0


class PolicyServerLostError(TimeoutError):
    """No new chunk arrived while the robot held its last action for longer than `max_hold_s`."""


def _chunk_of(reply: dict) -> np.ndarray:
    if not isinstance(reply, dict) or "actions" not in reply:
        raise KeyError(f"policy reply has no 'actions' (keys {sorted(reply) if isinstance(reply, dict) else reply})")
    chunk = np.asarray(reply["actions"])
    if chunk.ndim != 2 or chunk.shape[0] < 1:
        raise ValueError(f"policy reply 'actions' must be [horizon, action_dim], got shape {chunk.shape}")
    return chunk


class _Executor(_base_policy.BasePolicy):
    def __init__(
        self,
        policy: _base_policy.BasePolicy,
        *,
        control_hz: float,
        execution_horizon: int | None = None,
        max_hold_s: float | None = DEFAULT_MAX_HOLD_S,
    ):
        if control_hz <= 0:
            raise ValueError(f"control_hz must be > 0, got {control_hz}")
        if execution_horizon is not None and execution_horizon < 1:
            raise ValueError(f"execution_horizon must be >= 1, got {execution_horizon}")
        if max_hold_s is not None and max_hold_s <= 0:
            raise ValueError(f"max_hold_s must be > 0 seconds (or None: hold forever), got {max_hold_s}")
        self.max_hold_s = max_hold_s
        self._held_since: float | None = None
        self._policy = policy
        self.control_hz = float(control_hz)
        self._execution_horizon = execution_horizon
        self.metrics = ExecutionMetrics(control_hz=self.control_hz)
        self._last_action: np.ndarray | None = None

    def _timed_infer(self, obs: dict) -> tuple[np.ndarray, float]:
        start = time.monotonic()
        chunk = _chunk_of(self._policy.infer(obs))
        return chunk, time.monotonic() - start

    def _emit(self, action: np.ndarray, *, swapped=False, held=False, slowed=False) -> dict:
        now = time.monotonic()
        if not held:
            self._held_since = None
        elif self._held_since is None:
            self._held_since = now
        elif self.max_hold_s is not None and now - self._held_since > self.max_hold_s:
            raise PolicyServerLostError(
                f"no new action chunk for {now - self._held_since:.1f}s (max_hold_s={self.max_hold_s}): the policy "
                f"server is gone or hangs ({self.metrics.inference_errors} failed requests). The robot holds its last command; "
                "check the server (its log, GET /healthz), then restart the client."
            )
        self.metrics.record_step(action, now, swapped=swapped, held=held, slowed=slowed)
        self._last_action = action
        return {"actions": action}

    def close(self) -> None:
        """Stop background threads (no-op for the synchronous executor)."""

    def reset(self) -> None:
        self.close()
        self._policy.reset()
        self._last_action = None
        self._held_since = None
        self.metrics.reset_history()


class SyncChunkExecutor(_Executor):
    """Execute `execution_horizon` actions (default: the whole chunk) of every chunk, then query again."""

    def __init__(self, policy, *, control_hz: float, execution_horizon: int | None = None):
        super().__init__(policy, control_hz=control_hz, execution_horizon=execution_horizon, max_hold_s=None)
        self._chunk: np.ndarray | None = None
        self._t = 0

    def infer(self, obs: dict) -> dict:
        swapped = False
        if self._chunk is None or self._t >= min(self._execution_horizon or len(self._chunk), len(self._chunk)):
            self._chunk, rtt = self._timed_infer(obs)
            self.metrics.record_inference(DelayEstimator.steps_for(rtt, self.control_hz), rtt)
            self._t, swapped = 0, self._last_action is not None
        action = self._chunk[self._t]
        self._t += 1
        return self._emit(action, swapped=swapped)

    def reset(self) -> None:
        super().reset()
        self._chunk, self._t = None, 0


class AsyncChunkExecutor(_Executor):
    """Control thread = the caller of `infer`; an inference thread computes the next chunk meanwhile.

    `rtc=True` sends `prev_actions` / `inference_delay` with every request (real-time chunking), `rtc=False` is naive
    asynchronous switching. The inference thread starts a new request once `execution_horizon` actions of the
    current chunk were executed (default: half the chunk).
    """

    def __init__(
        self,
        policy: _base_policy.BasePolicy,
        *,
        control_hz: float,
        rtc: bool = True,
        execution_horizon: int | None = None,
        delay_window: int = 10,
        on_late: str = "hold",
        max_hold_s: float | None = DEFAULT_MAX_HOLD_S,
    ):
        super().__init__(policy, control_hz=control_hz, execution_horizon=execution_horizon, max_hold_s=max_hold_s)
        if on_late not in ("hold", "slow"):
            raise ValueError(f"on_late={on_late!r}: use 'hold' (repeat the last action) or 'slow' (half speed)")
        self.rtc = rtc
        self._on_late = on_late
        self._delay_window = delay_window
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._init_state()

    def _init_state(self) -> None:
        self._chunk: np.ndarray | None = None
        self._t = 0  # actions consumed from the current chunk
        self._obs: dict | None = None
        self._obs_index: int | None = None  # None: no observation taken since the last chunk swap
        self._swapped = False
        self._in_flight = False
        self._tick = 0
        self.estimator = DelayEstimator(self._delay_window, 0)
        self.requests: list[dict] = []  # (s, delay, len(prev)) of every request, for inspection and tests

    @property
    def execution_horizon(self) -> int:
        h = len(self._chunk) if self._chunk is not None else 1
        return max(1, min(self._execution_horizon or h // 2, h))

    def infer(self, obs: dict) -> dict:
        with self._cond:
            if self._chunk is None:
                self._start(obs)
            # The chunk computed from this observation starts with the action for it: index `_t` of the current
            # chunk (the one sent now, or the next one if the executor holds because the chunk ran out).
            self._obs, self._obs_index = obs, self._t
            self._tick += 1
            remaining = len(self._chunk) - self._t
            slowed = (
                self._on_late == "slow"
                and self._in_flight
                and 0 < remaining <= self.estimator.estimate()
                and self._tick % 2 == 0
            )
            held = remaining <= 0
            swapped = False
            if held or slowed:  # repeat the last action; never jump ahead
                action = self._last_action
            else:
                action, swapped, self._swapped = self._chunk[self._t], self._swapped, False
                self._t += 1
            self._cond.notify_all()
        return self._emit(action, swapped=swapped, held=held, slowed=slowed and not held)

    def _start(self, obs: dict) -> None:
        """First chunk synchronously (the robot has nothing to execute yet), then the inference thread."""
        chunk, rtt = self._timed_infer(obs)
        self._chunk, self._t = chunk, 0
        self.estimator = DelayEstimator(self._delay_window, DelayEstimator.steps_for(rtt, self.control_hz))
        self.metrics.record_inference(DelayEstimator.steps_for(rtt, self.control_hz), rtt)
        self._stop.clear()
        self._thread = threading.Thread(target=self._inference_loop, daemon=True, name="rtc-inference")
        self._thread.start()

    def _ready_to_request(self) -> bool:
        return self._obs_index is not None and self._t >= self.execution_horizon

    def _inference_loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._stop.is_set() or self._ready_to_request(), timeout=0.1)
                if self._stop.is_set() or not self._ready_to_request():
                    continue
                s = self._obs_index  # new chunk index i <-> current chunk index s + i
                prev = self._chunk[s:]
                request = dict(self._obs)
                delay = min(self.estimator.estimate(), len(prev))
                if self.rtc and len(prev):
                    request["prev_actions"] = np.ascontiguousarray(prev, dtype=np.float32)
                    request["inference_delay"] = int(delay)
                self.requests.append({"s": s, "inference_delay": int(delay), "prev_len": len(prev)})
                self._in_flight = True
            try:
                chunk, rtt = self._timed_infer(request)
            except Exception:
                with self._cond:
                    self._in_flight = False
                self.metrics.record_error()
                logger.exception("inference failed; holding the robot on the current chunk and retrying")
                self._stop.wait(RETRY_AFTER_ERROR_S)
                continue
            with self._cond:
                self._in_flight = False
                if self._stop.is_set():
                    break
                actual = self._t - s  # actions committed since the observation (incl. its own): the real delay
                self._chunk, self._t = chunk, min(actual, len(chunk))
                self._obs_index = None  # the stored observation indexes the old chunk
                self._swapped = True
                self.estimator.observe(actual)
                self._cond.notify_all()
            self.metrics.record_inference(actual, rtt)

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        _join_inference_thread(self._thread)
        self._thread = None

    def reset(self) -> None:
        super().reset()
        with self._cond:
            self._init_state()


class TemporalEnsembleExecutor(_Executor):
    """ACT-style temporal ensembling over chunks requested back to back by an inference thread."""

    def __init__(
        self,
        policy,
        *,
        control_hz: float,
        coeff: float = 0.01,
        max_chunks: int = 64,
        max_hold_s: float | None = DEFAULT_MAX_HOLD_S,
    ):
        super().__init__(policy, control_hz=control_hz, max_hold_s=max_hold_s)
        self.coeff = coeff
        self._max_chunks = max_chunks
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._chunks: list[tuple[int, np.ndarray]] = []  # (global step of the observation, chunk), oldest first
        self._step = 0
        self._obs: dict | None = None

    def infer(self, obs: dict) -> dict:
        if self._thread is None:
            chunk, rtt = self._timed_infer(obs)
            self.metrics.record_inference(DelayEstimator.steps_for(rtt, self.control_hz), rtt)
            self._chunks, self._step = [(0, chunk)], 0
            self._stop.clear()
            self._thread = threading.Thread(target=self._inference_loop, daemon=True, name="te-inference")
            self._thread.start()
        with self._lock:
            self._obs = obs
            k = self._step
            self._chunks = [(s, c) for s, c in self._chunks if k - s < len(c)][-self._max_chunks :]
            preds = [c[k - s] for s, c in self._chunks]
            self._step += 1
        self._wake.set()
        if not preds:
            return self._emit(self._last_action, held=True)
        w = np.exp(-self.coeff * np.arange(len(preds)))
        action = (np.tensordot(w, np.stack(preds).astype(np.float64), axes=1) / w.sum()).astype(preds[0].dtype)
        return self._emit(action)

    def _inference_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.1)
            self._wake.clear()
            with self._lock:
                if self._obs is None:
                    continue
                start, request = self._step, dict(self._obs)
            try:
                chunk, rtt = self._timed_infer(request)
            except Exception:
                self.metrics.record_error()
                logger.exception("inference failed; retrying")
                self._stop.wait(RETRY_AFTER_ERROR_S)
                continue
            with self._lock:
                # A chunk computed from the observation of step k starts with the action for step k (already sent).
                self._chunks.append((start - 1, chunk))
                delay = self._step - start
            self.metrics.record_inference(delay, rtt)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        _join_inference_thread(self._thread)
        self._thread = None

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._chunks, self._step, self._obs = [], 0, None


def _join_inference_thread(thread: threading.Thread | None, timeout_s: float = 2.0) -> None:
    """Wait for the inference thread to finish its request; one stuck in a request to a hung server is a daemon
    and is left behind (closing the client connection ends it) so the robot program can exit."""
    if thread is None:
        return
    thread.join(timeout=timeout_s)
    if thread.is_alive():
        logger.warning("inference thread still waiting for the server after %.0fs; leaving it (daemon)", timeout_s)


def make_executor(
    kind: str,
    policy: _base_policy.BasePolicy,
    *,
    control_hz: float,
    execution_horizon: int | None = None,
    on_late: str = "hold",
    ensemble_coeff: float = 0.01,
    max_hold_s: float | None = DEFAULT_MAX_HOLD_S,
) -> _Executor:
    """`kind` in rtc | naive | sync | ensemble (see the module docstring). `max_hold_s`: how long the asynchronous
    executors may hold the last action waiting for a chunk before `PolicyServerLostError` (None: forever); the
    synchronous one waits in the request itself (the websocket client raises when the connection drops)."""
    if kind == "rtc" or kind == "naive":
        return AsyncChunkExecutor(
            policy,
            control_hz=control_hz,
            rtc=kind == "rtc",
            execution_horizon=execution_horizon,
            on_late=on_late,
            max_hold_s=max_hold_s,
        )
    if kind == "sync":
        return SyncChunkExecutor(policy, control_hz=control_hz, execution_horizon=execution_horizon)
    if kind == "ensemble":
        return TemporalEnsembleExecutor(policy, control_hz=control_hz, coeff=ensemble_coeff, max_hold_s=max_hold_s)
    raise ValueError(f"chunking={kind!r}: use one of {', '.join(KINDS)}")
