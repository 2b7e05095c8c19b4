"""Serve an action chunk one step at a time: query the inner policy only when the chunk is used up."""

from __future__ import annotations

import numpy as np

from openpi_client import base_policy as _base_policy


def _map_arrays(fn, tree):
    if isinstance(tree, dict):
        return {k: _map_arrays(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map_arrays(fn, v) for v in tree)
    return fn(tree) if isinstance(tree, np.ndarray) else tree


class ActionChunkBroker(_base_policy.BasePolicy):
    """Returns `x[step]` of every array leaf of the last chunk; re-queries after `action_horizon` steps."""

    def __init__(self, policy: _base_policy.BasePolicy, action_horizon: int):
        if action_horizon < 1:
            raise ValueError(f"action_horizon must be >= 1, got {action_horizon}")
        self._policy = policy
        self._action_horizon = action_horizon
        self._cur_step = 0
        self._last_results: dict | None = None

    def infer(self, obs: dict) -> dict:
        if self._last_results is None:
            self._last_results = self._policy.infer(obs)
            self._cur_step = 0
        step = self._cur_step
        results = _map_arrays(lambda x: x[step, ...], self._last_results)
        self._cur_step += 1
        if self._cur_step >= self._action_horizon:
            self._last_results = None
        return results

    def reset(self) -> None:
        self._policy.reset()
        self._last_results = None
        self._cur_step = 0
