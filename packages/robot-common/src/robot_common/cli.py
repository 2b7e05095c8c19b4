"""Command-line arguments and entry-point bodies shared by the Piper and Flexiv clients."""

from __future__ import annotations

import dataclasses
import logging
from typing import Literal

from robot_common.cameras import CameraArgs
from robot_common.cameras import close_cameras
from robot_common.collect import record_episodes
from robot_common.controls import make_controls
from robot_common.policy_loop import RobotEnvironment
from robot_common.policy_loop import run_policy
from robot_common.raw_episodes import open_recorder
from robot_common.timing import CAPTURE_TIME
from robot_common.timing import capture_time_feature

logger = logging.getLogger("robot_common.cli")

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
    cameras: CameraArgs = dataclasses.field(default_factory=CameraArgs)
    """Base and wrist cameras and the recorded image size (--cameras.backend, --cameras.base, --cameras.height ...)."""
    sim: bool = False
    """Use the simulated arm and cameras (scripted leader)."""
    move_to_start: bool = False
    """Let the follower approach a far leader pose at the per-step limit instead of refusing to start."""
    overwrite: bool = False
    """Replace an existing dataset with the same repo_id (the old one is removed only once the new one is
    complete)."""
    resume: bool = False
    """Append to an existing dataset, and first merge the episodes an interrupted (crashed) session left in
    .<repo_id>.staging."""
    controls: Literal["keys", "auto"] | None = None
    """keys: Enter/space starts an episode and stops+saves it early, d discards, r re-records, q quits. auto:
    episodes start by themselves (keys still work on a terminal). Default: keys on a real robot with a terminal,
    auto with --sim or without a terminal."""
    reset_seconds: float = 0.0
    """auto controls: pause between episodes to reset the scene."""
    format: Literal["lerobot", "raw", "auto"] = "auto"
    """lerobot: write the LeRobot dataset directly (needs lerobot). raw: one numpy .npz per episode in
    .<repo_id>.raw/, converted later where lerobot is installed (`make flexiv-convert REPO=<repo_id>`). auto:
    lerobot if it is installed in this Python, else raw."""
    keep_off_rate: bool = False
    """Keep (merge) episodes taken off the dataset's rate: more than 5 % off --fps or more than 5 % overrun steps.
    Without it such an episode is rejected: kept aside (staging dir: <name>.rejected; raw: .raw/rejected/),
    not merged, not counted, and the session records another."""
    writer: Literal["streaming", "threads", "sync"] = "streaming"
    """How images leave the control loop (LeRobot format): streaming = LeRobot's streaming video encoder, one
    encoder thread per camera; threads = LeRobot's image writer threads (PNG), video encoded after the episode;
    sync = PNGs written inside the loop (the old behaviour, for comparison)."""
    writer_queue: int = 150
    """Frames the recorder's queue holds when the writer falls behind, before the loop waits for it (backpressure,
    reported); the rest of the backlog is written after the episode. 150 = 5 s at 30 fps, 138 MB per 480x640
    camera."""


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
    cameras: CameraArgs = dataclasses.field(default_factory=CameraArgs)
    """Base and wrist cameras (--cameras.backend opencv|realsense, --cameras.base 0, --cameras.wrist 2 ...)."""
    max_hold_s: float = 5.0
    """rtc / naive / ensemble: if no new chunk arrives for this long while the arm holds its last command (server
    died, hangs, network gone), stop with PolicyServerLostError instead of waiting forever. 0 = wait forever."""


def run_robot(robot, cameras, args: RunArgs) -> RobotEnvironment:
    """Connect, run the policy loop, always disconnect. Returns the environment: `env.sent` holds the commands
    sent to the arm (after the safety clamp), `env.metrics` the executor's metrics."""
    robot.connect()
    robot.allow_move_to_start = args.move_to_start
    cams = {}
    try:
        cams = cameras(robot)
        env = RobotEnvironment(robot, cams, args.prompt, max_steps=args.max_steps)
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
            max_hold_s=args.max_hold_s or None,
        )
        env.metrics = executor.metrics
        return env
    finally:
        close_cameras(cams)
        robot.flush_clamp_log()
        clamps = robot.clamp_stats.summary()
        logger.info("safety clamps: %d limit, %d per-step", clamps["limit_commands"], clamps["step_commands"])
        robot.disconnect()


def collect_robot(
    robot, cameras, leader, args: CollectArgs, *, features: dict, robot_type: str, vectors, next_state_actions=None
) -> int:
    """Record teleoperated episodes of a connected robot into a LeRobot dataset until `args.num_episodes` are
    kept (see robot_common.controls for the keys), always disconnect. `leader(t)` gives the commanded action at
    step t, `vectors(action)` the frame's state/action features (a `capture_time` column is added). Returns the
    number of episodes kept."""
    robot.allow_move_to_start = args.move_to_start
    try:
        recorder = open_recorder(
            args.format,
            args.repo_id,
            fps=args.fps,
            features={**features, CAPTURE_TIME: capture_time_feature()},
            robot_type=robot_type,
            overwrite=args.overwrite,
            resume=args.resume,
            writer=args.writer,
            queue_frames=args.writer_queue,
        )
        controls = make_controls(args.controls, sim=args.sim, reset_seconds=args.reset_seconds)
        stats = record_episodes(
            robot,
            cameras,
            leader,
            recorder,
            task=args.task,
            num_episodes=args.num_episodes,
            episode_steps=args.episode_steps,
            fps=args.fps,
            realtime=True,  # also with --sim: the simulated arm and cameras run in real time
            keep_off_rate=args.keep_off_rate,
            vectors=vectors,
            image_keys=IMAGE_KEYS,
            next_state_actions=next_state_actions,
            controls=controls,
        )
    finally:
        robot.disconnect()
    print(f"recorded {stats.episodes_kept} episodes into {recorder.final}")
    return stats.episodes_kept
