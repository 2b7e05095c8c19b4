"""Run a served policy on an arm: the openpi_client runtime with the robot as its Environment."""

from __future__ import annotations

import logging
import time

import numpy as np

from openpi_client import image_tools
from openpi_client.runtime import environment as _environment
from robot_common.interface import Camera
from robot_common.interface import Robot

logger = logging.getLogger("robot_common.policy_loop")


class RobotEnvironment(_environment.Environment):
    """Observation = {"observation/state", "observation/images/base", "observation/images/wrist", "prompt"}
    (images resized with padding to 224x224 on the robot PC to keep messages small)."""

    def __init__(
        self,
        robot: Robot,
        cameras: dict[str, Camera],
        prompt: str,
        *,
        max_steps: int = 0,
        image_size: int = 224,
        state_fn=None,
        action_fn=None,
    ):
        missing = {"base", "wrist"} - set(cameras)
        if missing:
            raise ValueError(f"cameras {sorted(missing)} missing; pass a 'base' and a 'wrist' camera")
        self._robot, self._cameras, self._prompt = robot, cameras, prompt
        self._max_steps, self._size = max_steps, image_size
        self._state_fn = state_fn or robot.state
        self._action_fn = action_fn or robot.command
        self._steps = 0
        self.sent: list[np.ndarray] = []

    def reset(self) -> None:
        self._steps = 0

    def is_episode_complete(self) -> bool:
        return self._max_steps > 0 and self._steps >= self._max_steps

    def get_observation(self) -> dict:
        obs = {"observation/state": np.asarray(self._state_fn(), dtype=np.float32), "prompt": self._prompt}
        for name, cam in self._cameras.items():
            img = image_tools.convert_to_uint8(image_tools.resize_with_pad(cam.read(), self._size, self._size))
            obs[f"observation/images/{name}"] = img
        return obs

    def apply_action(self, action: dict) -> None:
        if "actions" not in action:
            raise KeyError(f"policy reply has no 'actions' (keys {sorted(action)})")
        self.sent.append(self._action_fn(np.asarray(action["actions"])))
        self._steps += 1


def run_policy(
    env: RobotEnvironment,
    *,
    host: str,
    port: int,
    action_horizon: int | None,
    control_hz: float,
    num_episodes: int = 1,
    max_episode_steps: int = 0,
    api_key: str | None = None,
) -> None:
    """Connect to `serve_policy` and execute chunks: the first `action_horizon` actions of every chunk
    (default: the server's action horizon from its metadata)."""
    from openpi_client import action_chunk_broker
    from openpi_client import websocket_client_policy
    from openpi_client.runtime import runtime as _runtime
    from openpi_client.runtime.agents import policy_agent

    client = websocket_client_policy.WebsocketClientPolicy(host, port, api_key=api_key)
    meta = client.get_server_metadata()
    horizon = action_horizon or int(meta.get("action_horizon", 10))
    logger.info("server metadata %s; executing %d actions per chunk at %.0f Hz", meta, horizon, control_hz)
    start = time.time()
    _runtime.Runtime(
        env,
        policy_agent.PolicyAgent(action_chunk_broker.ActionChunkBroker(client, horizon)),
        [],
        max_hz=control_hz,
        num_episodes=num_episodes,
        max_episode_steps=max_episode_steps,
    ).run()
    logger.info("done in %.1fs", time.time() - start)
