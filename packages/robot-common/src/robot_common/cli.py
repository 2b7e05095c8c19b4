"""Command-line arguments and entry-point bodies shared by the Piper and Flexiv clients."""

from __future__ import annotations

import dataclasses

from robot_common.collect import record_episodes
from robot_common.policy_loop import RobotEnvironment
from robot_common.policy_loop import run_policy
from robot_common.recorder import EpisodeRecorder

IMAGE_KEYS = {"base": "observation.images.base", "wrist": "observation.images.wrist"}


@dataclasses.dataclass
class CollectArgs:
    repo_id: str = "robot_lerobot_data"
    """Dataset name; written to $HF_LEROBOT_HOME/<repo_id> (datasets/ with make)."""
    task: str = "pick up the cube"
    """Task string stored with every frame (it becomes the prompt)."""
    num_episodes: int = 1
    episode_steps: int = 300
    fps: int = 30
    image_height: int = 480
    image_width: int = 640
    sim: bool = False
    """Use the simulated arm and cameras (scripted leader)."""
    move_to_start: bool = False
    """Let the follower approach a far leader pose at the per-step limit instead of refusing to start."""
    overwrite: bool = False
    """Replace an existing dataset with the same repo_id."""


@dataclasses.dataclass
class RunArgs:
    host: str = "127.0.0.1"
    port: int = 8000
    prompt: str = "pick up the cube"
    chunking: str = "rtc"
    """rtc (real-time chunking), naive (async, no inpainting), sync (stop and wait for every chunk) or ensemble
    (temporal ensembling); see openpi_client.rtc."""
    action_horizon: int | None = None
    """Execution horizon: actions executed per chunk (sync: default the whole chunk) or before the next request
    starts (rtc / naive: default half the chunk)."""
    on_late: str = "hold"
    """When the next chunk is late: hold the last action, or slow (stretch the chunk's tail to half speed first)."""
    control_hz: float = 30.0
    max_steps: int = 600
    num_episodes: int = 1
    api_key: str | None = None
    sim: bool = False
    move_to_start: bool = False
    """Allow the first action of an episode to be far from the arm's pose: the arm approaches it at the per-step
    limit. Without it such a start is refused (FarFromStartError)."""


def run_robot(robot, cameras, args: RunArgs) -> RobotEnvironment:
    """Connect, run the policy loop, always disconnect. Returns the environment: `env.sent` holds the commands
    sent to the arm (after the safety clamp), `env.metrics` the executor's metrics."""
    robot.connect()
    robot.allow_move_to_start = args.move_to_start
    try:
        env = RobotEnvironment(robot, cameras(robot), args.prompt, max_steps=args.max_steps)
        executor = run_policy(
            env,
            host=args.host,
            port=args.port,
            action_horizon=args.action_horizon,
            control_hz=args.control_hz,
            num_episodes=args.num_episodes,
            api_key=args.api_key,
            chunking=args.chunking,
            on_late=args.on_late,
        )
        env.metrics = executor.metrics
        return env
    finally:
        robot.disconnect()


def collect_robot(
    robot, cameras, leader, args: CollectArgs, *, features: dict, robot_type: str, vectors, next_state_actions=None
) -> int:
    """Record `args.num_episodes` teleoperated episodes of a connected robot into a LeRobot dataset, always
    disconnect. `leader(t)` gives the commanded action at step t, `vectors(action)` the frame's state/action
    features. Returns the number of episodes written."""
    robot.allow_move_to_start = args.move_to_start
    recorder = EpisodeRecorder(
        args.repo_id, fps=args.fps, features=features, robot_type=robot_type, overwrite=args.overwrite
    )
    try:
        n = record_episodes(
            robot,
            cameras,
            leader,
            recorder,
            task=args.task,
            num_episodes=args.num_episodes,
            episode_steps=args.episode_steps,
            fps=args.fps,
            realtime=not args.sim,
            vectors=vectors,
            image_keys=IMAGE_KEYS,
            next_state_actions=next_state_actions,
        )
    finally:
        robot.disconnect()
    print(f"recorded {n} episodes into {recorder.final}")
    return n
