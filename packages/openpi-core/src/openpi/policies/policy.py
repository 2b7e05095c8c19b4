"""Policy: robot observation dict -> input transforms -> batched model sampling -> output transforms -> actions.

Works with the JAX model (jitted `sample_actions`) and the PyTorch model (`is_pytorch=True`). A request may carry
`prev_actions` [k, robot_dim] and `inference_delay` (real-time chunking); they are converted to model space with the
same input transforms and passed to the RTC sampler. Every request is checked first (`validation.py`): a field the
robot transform needs that is missing, mis-shaped or non-finite raises `ObservationError` naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
import logging
import os
import pathlib
import threading
import time
from typing import Any

import numpy as np

from openpi import transforms as _transforms
from openpi.models import model as _model
from openpi.policies import validation as _validation
from openpi.shared.tree import tree_map
from openpi_client import base_policy as _base_policy

logger = logging.getLogger("openpi.policy")

RTC_KEYS = ("prev_actions", "inference_delay")
RTC_METHODS = ("vjp", "identity", "prefix")


class Policy(_base_policy.BasePolicy):
    def __init__(
        self,
        model,
        *,
        rng=None,
        transforms: Sequence[_transforms.DataTransformFn] = (),
        output_transforms: Sequence[_transforms.DataTransformFn] = (),
        sample_kwargs: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        is_pytorch: bool = False,
        pytorch_device: str = "cpu",
        rtc_method: str = "vjp",
        rtc_max_guidance_weight: float = 5.0,
    ):
        if rtc_method not in RTC_METHODS:
            raise ValueError(f"rtc_method={rtc_method!r}: use one of {', '.join(RTC_METHODS)}")
        self._rtc = {"method": rtc_method, "max_guidance_weight": float(rtc_max_guidance_weight)}
        self._model = model
        transforms = list(transforms)
        self._input_transform = _transforms.compose(transforms)
        self._output_transform = _transforms.compose(output_transforms)
        self._sample_kwargs = dict(sample_kwargs or {})
        # Clients read this to know that requests may carry prev_actions / inference_delay.
        self._metadata = {**dict(metadata or {}), "rtc": dict(self._rtc)}
        # What a request must look like for these transforms (checked before anything runs; validation.py).
        self.observation_spec = _validation.spec_for(transforms, self._metadata)
        self._is_pytorch = is_pytorch
        self._device = pytorch_device
        self._lock = threading.Lock()
        if is_pytorch:
            import torch

            self._model = model.to(pytorch_device).eval()
            self._torch = torch
        else:  # jax only on this branch: serving a torch checkpoint never imports it
            from flax import nnx
            import jax

            self._rng = rng if rng is not None else jax.random.key(0)
            graphdef, state = nnx.split(model)

            def sample(state, rng, obs, noise, **kw):
                return nnx.merge(graphdef, state).sample_actions(rng, obs, noise=noise, **kw)

            self._state = state
            self._sample = jax.jit(sample, static_argnames=tuple(self._sample_kwargs))

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    def _split_rtc(self, obs: dict) -> tuple[dict, dict]:
        rtc = {k: obs[k] for k in RTC_KEYS if k in obs}
        return {k: v for k, v in obs.items() if k not in RTC_KEYS}, rtc

    def _batched(self, x):
        if self._is_pytorch:
            t = self._torch.as_tensor(np.asarray(x)).to(self._device)
            return t[None, ...]
        import jax.numpy as jnp

        return jnp.asarray(x)[None, ...]

    def _rtc_prefix(self, inputs_raw: dict, rtc: dict):
        """prev_actions (robot space) -> model space through the same input transforms as training targets."""
        prev = np.asarray(rtc["prev_actions"], dtype=np.float32)
        if prev.ndim != 2:
            raise ValueError(f"prev_actions must be [k, action_dim], got shape {prev.shape}")
        data = self._input_transform({**inputs_raw, "actions": prev.copy()})
        return np.asarray(data["actions"], dtype=np.float32)

    def infer(self, obs: dict, *, noise: np.ndarray | None = None) -> dict:
        _validation.check_observation(obs, self.observation_spec)  # raises ObservationError naming the field
        obs, rtc = self._split_rtc(obs)
        raw = dict(obs)
        inputs = self._input_transform(dict(obs))
        batched = tree_map(self._batched, inputs)
        observation = _model.Observation.from_dict(batched)
        kwargs = dict(self._sample_kwargs)
        if noise is not None:
            noise = self._batched(np.asarray(noise, dtype=np.float32))
        start = time.monotonic()
        with self._lock:
            if rtc.get("prev_actions") is not None and len(rtc["prev_actions"]):
                actions = self._sample_rtc(
                    observation, self._rtc_prefix(raw, rtc), int(rtc.get("inference_delay", 0)), noise, kwargs
                )
            elif self._is_pytorch:
                with self._torch.no_grad():
                    actions = self._model.sample_actions(self._device, observation, noise=noise, **kwargs)
            else:
                import jax

                self._rng, key = jax.random.split(self._rng)
                actions = self._sample(self._state, key, observation, noise, **kwargs)
            actions = np.asarray(actions.detach().cpu() if self._is_pytorch else actions)
        infer_ms = (time.monotonic() - start) * 1000
        outputs = {"state": np.asarray(inputs["state"]), "actions": actions[0]}
        outputs = self._output_transform(outputs)
        outputs["policy_timing"] = {"infer_ms": infer_ms}
        return outputs

    def _sample_rtc(self, observation, prev_model, delay, noise, kwargs):
        if self._is_pytorch:
            from openpi.models_pytorch import rtc as _rtc

            prev = self._torch.as_tensor(prev_model)[None].to(self._device)
            return _rtc.sample_actions_rtc(
                self._model,
                self._device,
                observation,
                prev_chunk=prev,
                inference_delay=delay,
                noise=noise,
                **self._rtc,
                **kwargs,
            )
        import jax
        import jax.numpy as jnp

        from openpi.models import rtc as _rtc

        self._rng, key = jax.random.split(self._rng)
        return _rtc.sample_actions_rtc(
            self._model,
            key,
            observation,
            prev_chunk=jnp.asarray(prev_model)[None],
            inference_delay=delay,
            noise=noise,
            **self._rtc,
            **kwargs,
        )

    def warmup(self, model_config) -> tuple[float, float]:
        """Compile / warm the sampler on fake inputs shaped like real ones, the RTC sampler too (so a robot's first
        RTC request does not wait for a compile). Returns (first_ms, steady_ms) of plain sampling."""
        if self._is_pytorch:
            from openpi.models_pytorch import pi0_pytorch

            obs = pi0_pytorch.fake_observation(model_config, 1, self._device)
        else:
            obs = model_config.fake_obs(1)
        prev = np.zeros((1, max(1, model_config.action_horizon // 2), model_config.action_dim), np.float32)
        times = []
        for _ in range(2):
            start = time.monotonic()
            if self._is_pytorch:
                import torch

                with torch.no_grad():
                    self._model.sample_actions(self._device, obs, **self._sample_kwargs)
            else:
                import jax

                np.asarray(self._sample(self._state, jax.random.key(0), obs, None, **self._sample_kwargs))
            times.append((time.monotonic() - start) * 1000)
        # The RTC sampler too: JAX jit-compiles it; a compiled torch model compiles the per-token-time step variant
        # of "prefix" here (an eager torch model has nothing to warm).
        if not self._is_pytorch or getattr(self._model, "compile_mode", None):
            out = self._sample_rtc(obs, prev[0], 1, None, dict(self._sample_kwargs))
            np.asarray(out.detach().cpu() if self._is_pytorch else out)
        return times[0], times[1]


class PolicyRecorder(_base_policy.BasePolicy):
    """Saves every step's inputs and outputs to `<record_dir>/step_<n>.npy` (a pickled dict
    {"inputs": request, "outputs": reply}; kept nested because robot keys such as `observation/state` contain '/')
    for offline inspection and replay (`load_record`)."""

    def __init__(self, policy: _base_policy.BasePolicy, record_dir: str | os.PathLike):
        self._policy = policy
        self._dir = pathlib.Path(record_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._step = 0
        logger.info("Recording policy inputs/outputs to %s", self._dir)

    @property
    def metadata(self):
        return getattr(self._policy, "metadata", {})

    def infer(self, obs: dict) -> dict:
        results = self._policy.infer(obs)
        data = {"inputs": obs, "outputs": results}
        path = self._dir / f"step_{self._step}.npy"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            holder = np.empty((), dtype=object)
            holder[()] = data
            np.save(f, holder, allow_pickle=True)
        os.replace(tmp, path)
        self._step += 1
        return results


def load_record(path: str | os.PathLike) -> dict:
    """Read one `step_<n>.npy` back into {"inputs": {...}, "outputs": {...}}."""
    return np.load(path, allow_pickle=True).item()
