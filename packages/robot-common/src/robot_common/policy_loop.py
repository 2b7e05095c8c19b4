"""Run a served policy on an arm: the openpi_client runtime with the robot as its Environment."""

from __future__ import annotations

import logging
import time

import numpy as np

from openpi_client import image_tools
from openpi_client.runtime import environment as _environment
from robot_common.camera_sync import grab
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
        self.max_camera_skew = 0.0
        """Largest spread (s) between the camera frames of one observation so far (robot_common.camera_sync)."""

    def reset(self) -> None:
        self._steps = 0
        self._robot.reset_command_reference()

    def is_episode_complete(self) -> bool:
        return self._max_steps > 0 and self._steps >= self._max_steps

    def get_observation(self) -> dict:
        obs = {"observation/state": np.asarray(self._state_fn(), dtype=np.float32), "prompt": self._prompt}
        frames = grab(self._cameras)  # all cameras read concurrently: one step's images are taken together
        self.max_camera_skew = max(self.max_camera_skew, frames.skew)
        for name, img in frames.items():
            img = image_tools.convert_to_uint8(image_tools.resize_with_pad(img, self._size, self._size))
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
    chunking: str = "rtc",
    on_late: str = "hold",
    max_hold_s: float | None = 5.0,
    policy=None,
):
    """Connect to `serve_policy` and run the chunk executor picked by `chunking` (openpi_client.rtc: rtc, naive,
    sync, ensemble) at `control_hz`. `action_horizon`: actions executed per chunk before the next request (sync)
    or before the next request is started (rtc / naive; default half the chunk). Returns the executor (its
    `metrics` hold delays, chunk-boundary jumps and overruns). `policy` replaces the websocket client (tests)."""
    from openpi_client import websocket_client_policy
    from openpi_client.rtc import make_executor
    from openpi_client.runtime import runtime as _runtime
    from openpi_client.runtime.agents import policy_agent

    client = policy or websocket_client_policy.WebsocketClientPolicy(host, port, api_key=api_key)
    meta = client.get_server_metadata() if hasattr(client, "get_server_metadata") else {}
    if chunking == "rtc" and "rtc" not in meta:
        logger.warning("the server does not advertise RTC (upstream openpi?): chunks will switch naively")
    if chunking == "sync" and action_horizon is None:
        action_horizon = int(meta.get("action_horizon", 10))
    executor = make_executor(
        chunking,
        client,
        control_hz=control_hz,
        execution_horizon=action_horizon,
        on_late=on_late,
        max_hold_s=max_hold_s,
    )
    logger.info("server metadata %s; %s chunking at %.0f Hz", meta, chunking, control_hz)
    start = time.time()
    try:
        _runtime.Runtime(
            env,
            policy_agent.PolicyAgent(executor),
            [],
            max_hz=control_hz,
            num_episodes=num_episodes,
            max_episode_steps=max_episode_steps,
        ).run()
    finally:
        executor.close()
        if policy is None:
            client.close()  # also ends a request stuck on a hung server
    logger.info("done in %.1fs; %s", time.time() - start, executor.metrics.format())
    return executor
