"""gym-aloha environment wrapped as an openpi_client runtime Environment (headless, fast rendering)."""

from __future__ import annotations

import collections

import numpy as np

from aloha_sim.gl import ensure_headless_gl

TASKS = {
    "gym_aloha/AlohaTransferCube-v0": "transfer_cube",
    "gym_aloha/AlohaInsertion-v0": "insertion",
}
DEFAULT_PROMPTS = {"gym_aloha/AlohaTransferCube-v0": "Transfer cube", "gym_aloha/AlohaInsertion-v0": "Insert the peg"}
FPS = 50
# Cheaper software rendering (`fast_render=True`): gym-aloha's model renders a 4096^2 shadow map and 4x multisampling
# for every frame whatever the image size, which dominates small images on a CPU (EGL/llvmpipe, 2 cores:
# ~0.5 s -> ~0.07 s a 120x160 frame). A 1024^2 shadow map looks the same at these sizes; no multisampling leaves
# aliased edges, so a policy trained on such frames should be evaluated with the same setting and image size.
FAST_RENDER_QUALITY = {"shadowsize": 1024, "offsamples": 0}


def set_render_quality(physics, *, fast: bool) -> None:
    """Applies (or not) FAST_RENDER_QUALITY to a dm_control physics before its first render."""
    if not fast:
        return
    if getattr(physics, "_contexts", None) is not None:
        raise RuntimeError("set_render_quality must be called before the physics renders for the first time")
    for key, value in FAST_RENDER_QUALITY.items():
        setattr(physics.model.vis.quality, key, value)


def object_state(physics) -> np.ndarray:
    """Privileged simulator state: the free joints of the task's objects, float32 (transfer-cube: [7] = the cube's
    xyz + wxyz quaternion, physics.data.qpos[16:23]; insertion: [14] = peg, socket)."""
    return np.asarray(physics.data.qpos[16:], dtype=np.float32).copy()


def make_gym_env(
    task: str = "gym_aloha/AlohaTransferCube-v0",
    *,
    max_episode_steps: int = 400,
    image_hw=(480, 640),
    render: bool = True,
    fast_render: bool = False,
):
    """Creates the gym-aloha env with `obs_type="pixels_agent_pos"`, rendering only the top camera.

    gym-aloha renders three 480x640 cameras every step although it returns only `top`; rendering just the one it
    returns makes a step about 3x cheaper on a CPU and changes nothing the policy sees. `render=False` returns a
    black image instead (for evaluating scripted experts: software rendering is ~0.1 s a frame, physics ~1 ms).
    `fast_render=True` applies FAST_RENDER_QUALITY (smaller shadow map, no multisampling).
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not a gym-aloha task; choose one of {sorted(TASKS)}")
    ensure_headless_gl()
    import gym_aloha  # noqa: F401  (registers the envs)
    import gymnasium as gym

    env = gym.make(task, obs_type="pixels_agent_pos", max_episode_steps=max_episode_steps, disable_env_checker=True)
    inner = env.unwrapped
    dm_task = inner._env.task
    set_render_quality(inner._env.physics, fast=fast_render)
    height, width = image_hw
    black = np.zeros((height, width, 3), np.uint8)

    def get_observation(physics, _task=dm_task):
        obs = collections.OrderedDict()
        obs["qpos"] = _task.get_qpos(physics)
        obs["qvel"] = _task.get_qvel(physics)
        obs["env_state"] = physics.data.qpos.copy()[16:]
        image = physics.render(height=height, width=width, camera_id="top") if render else black.copy()
        obs["images"] = {"top": image}
        return obs

    dm_task.get_observation = get_observation
    return env


def convert_observation(gym_obs: dict, *, resize: int | None = 224) -> dict:
    """gym-aloha observation -> the upstream ALOHA-sim client observation: {"state": [14], "images": {"cam_high": CHW}}."""
    from openpi_client import image_tools

    img = gym_obs["pixels"]["top"]
    if resize:
        img = image_tools.convert_to_uint8(image_tools.resize_with_pad(img, resize, resize))
    return {
        "state": np.asarray(gym_obs["agent_pos"], dtype=np.float32),
        "images": {"cam_high": np.transpose(img, (2, 0, 1))},
    }


try:
    from openpi_client.runtime.environment import Environment as _EnvironmentBase
except ImportError:  # pragma: no cover - the client package is part of the workspace
    _EnvironmentBase = object


class AlohaSimEnvironment(_EnvironmentBase):
    """Runtime environment over gym-aloha: seeded resets, max-reward bookkeeping, done on success or time limit."""

    def __init__(
        self,
        task: str = "gym_aloha/AlohaTransferCube-v0",
        seed: int = 0,
        *,
        max_episode_steps: int = 400,
        prompt: str | None = None,
        privileged: bool = False,
        image_hw: tuple[int, int] = (480, 640),
        fast_render: bool = False,
    ):
        """`privileged=True` adds obs["env_state"]: the object poses read from the simulator (`object_state`,
        transfer-cube: float32[7] cube xyz + wxyz quaternion), as recorded by `aloha_sim.generate --privileged` in
        `observation.environment_state`. `image_hw` / `fast_render`: render the top camera as the dataset was
        rendered (e.g. (120, 160) and fast_render=True for `generate --image-height 120 --image-width 160
        --fast-render`); the image is then resized with padding to 224x224 as always."""
        self._env = make_gym_env(
            task, max_episode_steps=max_episode_steps, image_hw=tuple(image_hw), fast_render=fast_render
        )
        self._privileged = privileged
        self._rng = np.random.default_rng(seed)
        self._prompt = prompt
        self._last_obs = None
        self._done = True
        self.episode_reward = 0.0
        self.last_frame: np.ndarray | None = None

    def reset(self) -> None:
        gym_obs, _ = self._env.reset(seed=int(self._rng.integers(2**31 - 1)))
        self._last_obs = self._convert(gym_obs)
        self._done = False
        self.episode_reward = 0.0

    def is_episode_complete(self) -> bool:
        return self._done

    def get_observation(self) -> dict:
        if self._last_obs is None:
            raise RuntimeError("Observation is not set. Call reset() first.")
        return self._last_obs

    def apply_action(self, action: dict) -> None:
        actions = np.asarray(action["actions"], dtype=np.float64)
        if actions.shape != (14,):
            raise ValueError(f"action['actions'] must have shape (14,), got {actions.shape}")
        gym_obs, reward, terminated, truncated, _ = self._env.step(actions)
        self._last_obs = self._convert(gym_obs)
        self._done = bool(terminated or truncated)
        self.episode_reward = max(self.episode_reward, float(reward))

    @property
    def success(self) -> bool:
        return self.episode_reward >= 4

    def _convert(self, gym_obs: dict) -> dict:
        self.last_frame = gym_obs["pixels"]["top"]
        obs = convert_observation(gym_obs)
        if self._privileged:
            obs["env_state"] = object_state(self._env.unwrapped._env.physics)
        if self._prompt:
            obs["prompt"] = self._prompt
        return obs
