"""Generate scripted ALOHA-sim demonstrations (transfer-cube or insertion) as a LeRobot dataset.

The dataset has the features of `lerobot/aloha_sim_transfer_cube_human` (top camera video, 14-d state and action,
50 fps), so the `pi0_aloha_sim` data config (and our tiny `debug_pi05_aloha_sim`) read it unchanged.

    python -m aloha_sim.generate --repo-id aloha_sim_scripted --num-episodes 20
    python -m aloha_sim.generate --task insertion --num-episodes 20      # -> aloha_sim_insertion_scripted
    python -m aloha_sim.generate --repo-id aloha_sim_transfer_small --num-episodes 60 \
        --image-height 120 --image-width 160 --privileged                 # + observation.environment_state

Each episode is first simulated without rendering (the expert reads the physics state, ~0.5 s an episode); only an
episode that is kept is rendered, once per recorded frame, from the recorded physics states at the requested size.
Episode i uses object seed `--seed + i` (default 0, 1, 2, ...; failed seeds are skipped, so a dataset of N episodes
uses seeds below N / success rate). Evaluate on a disjoint range, e.g. seeds from 100000.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import shutil
import time

import numpy as np
import tyro

from aloha_sim.env import DEFAULT_PROMPTS
from aloha_sim.env import FPS
from aloha_sim.env import TASKS
from aloha_sim.env import make_gym_env

MOTORS = [
    "left_waist", "left_shoulder", "left_elbow", "left_forearm_roll", "left_wrist_angle", "left_wrist_rotate",
    "left_gripper", "right_waist", "right_shoulder", "right_elbow", "right_forearm_roll", "right_wrist_angle",
    "right_wrist_rotate", "right_gripper",
]  # fmt: skip


# Privileged simulator state: the free joints of the task's objects (xyz + wxyz quaternion each), physics.data.qpos[16:].
ENV_STATE_NAMES = {
    "gym_aloha/AlohaTransferCube-v0": ["cube_x", "cube_y", "cube_z", "cube_qw", "cube_qx", "cube_qy", "cube_qz"],
    "gym_aloha/AlohaInsertion-v0": [
        f"{obj}_{c}" for obj in ("peg", "socket") for c in ("x", "y", "z", "qw", "qx", "qy", "qz")
    ],
}


def aloha_features(image_hw: tuple[int, int], env_state_names: list[str] | None = None) -> dict:
    """Features of lerobot/aloha_sim_transfer_cube_human, plus `observation.environment_state` (float32 object poses
    read from the simulator) when `env_state_names` is given."""
    h, w = image_hw
    features = {
        "observation.images.top": {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channel"]},
        "observation.state": {"dtype": "float32", "shape": (14,), "names": [MOTORS]},
        "action": {"dtype": "float32", "shape": (14,), "names": [MOTORS]},
    }
    if env_state_names:
        features["observation.environment_state"] = {
            "dtype": "float32",
            "shape": (len(env_state_names),),
            "names": [env_state_names],
        }
    return features


DEFAULT_REPO_IDS = {"transfer_cube": "aloha_sim_scripted", "insertion": "aloha_sim_insertion_scripted"}


def resolve_task(task: str) -> str:
    """'transfer_cube' | 'insertion' (or the gym id, as `aloha_sim.main --task` takes) -> the gym env id."""
    by_name = {name: gym_id for gym_id, name in TASKS.items()}
    if task in TASKS:
        return task
    if task in by_name:
        return by_name[task]
    raise ValueError(f"--task {task!r} is not a scripted ALOHA task; use one of {sorted(by_name)} (or {sorted(TASKS)})")


@dataclasses.dataclass
class Args:
    repo_id: str | None = None
    """Dataset name; written to $HF_LEROBOT_HOME/<repo_id> (default: aloha_sim_scripted for transfer_cube,
    aloha_sim_insertion_scripted for insertion)."""
    num_episodes: int = 20
    seed: int = 0
    """Episode i uses object seed `seed + i` (failed seeds are skipped)."""
    episode_len: int = 400
    image_height: int = 480
    image_width: int = 640
    task: str = "transfer_cube"
    """Which scripted expert: transfer_cube | insertion (or the gym id gym_aloha/Aloha...-v0)."""
    prompt: str | None = None
    """Language instruction stored as the LeRobot task (default: "Transfer cube" / "Insert the peg")."""
    fast_render: bool = False
    """Cheaper rendering (aloha_sim.env.FAST_RENDER_QUALITY: 1024^2 shadow map, no multisampling; ~7x faster at
    120x160 on a CPU). Evaluate a policy trained on it with AlohaSimEnvironment(image_hw=..., fast_render=True)."""
    privileged: bool = False
    """Also record the object poses from the simulator as `observation.environment_state` (transfer-cube: float32[7],
    the cube's xyz + wxyz quaternion = physics.data.qpos[16:23], at the same step as observation.state)."""
    require_hold: bool = True
    """Transfer-cube: keep an episode only if the cube is still in the left gripper, off the table, at its last step
    (gym-aloha's reward 4 is also earned by a cube that touches the left fingers while falling)."""
    keep_failures: bool = False
    """Keep episodes whose replay did not reach reward 4 (off by default: the dataset holds successes only)."""
    max_attempts_factor: int = 3
    overwrite: bool = False


@dataclasses.dataclass
class GenerationReport:
    root: pathlib.Path
    episodes: int
    attempts: int
    successes: int
    frames: int
    seconds: float
    sim_seconds: float = 0.0
    render_seconds: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.attempts, 1)


def lerobot_home() -> pathlib.Path:
    return pathlib.Path(os.environ.get("HF_LEROBOT_HOME", pathlib.Path.home() / ".cache/huggingface/lerobot"))


@dataclasses.dataclass
class ScriptedEpisode:
    states: np.ndarray  # [T, 14] float32 observation.state
    actions: np.ndarray  # [T, 14] float32
    qpos: np.ndarray  # [T, nq] the full physics qpos at each recorded observation (for rendering afterwards)
    max_reward: float
    held_at_end: bool = True  # transfer-cube: the cube is in the left gripper at the end (scripted.held_by_left)

    @property
    def env_states(self) -> np.ndarray:
        """[T, 7 per object] float32 object poses (qpos[16:]) at the same steps as `states`."""
        return self.qpos[:, 16:].astype(np.float32)  # = aloha_sim.env.object_state at each step


def rollout_scripted_episode(env, seed: int, episode_len: int, task: str = "gym_aloha/AlohaTransferCube-v0"):
    """Runs the scripted expert of `task` for the object poses of `seed` in lockstep with the joint-space env and
    returns a `ScriptedEpisode`. Nothing is rendered: create `env` with `render=False` and render the kept episodes
    with `render_episode`."""
    from aloha_sim.scripted import held_by_left
    from aloha_sim.scripted import make_expert

    gym_task = resolve_task(task)
    expert = make_expert(gym_task, seed)
    obs, _ = env.reset(seed=seed)
    physics = env.unwrapped._env.physics
    states, actions, qpos, max_reward = [], [], [], 0.0
    for t in range(episode_len):
        states.append(np.asarray(obs["agent_pos"], dtype=np.float32))
        qpos.append(physics.data.qpos.copy())
        action = expert.act(t, physics)
        actions.append(action.astype(np.float32))
        obs, reward, _, _, _ = env.step(action)
        max_reward = max(max_reward, float(reward))
    held = held_by_left(physics) if gym_task == "gym_aloha/AlohaTransferCube-v0" else True
    return ScriptedEpisode(np.stack(states), np.stack(actions), np.stack(qpos), max_reward, held)


def render_episode(env, episode: ScriptedEpisode, image_hw: tuple[int, int]):
    """Yields the top-camera frame [H,W,3] uint8 of each recorded step, rendered from its physics state (the same
    image the env's observation would have had)."""
    physics = env.unwrapped._env.physics
    height, width = image_hw
    for q in episode.qpos:
        physics.data.qpos[:] = q
        physics.forward()
        yield physics.render(height=height, width=width, camera_id="top")


def generate(args: Args) -> GenerationReport:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    gym_task = resolve_task(args.task)
    repo_id = args.repo_id or DEFAULT_REPO_IDS[TASKS[gym_task]]
    prompt = args.prompt or DEFAULT_PROMPTS[gym_task]
    home = lerobot_home()
    final = home / repo_id
    if final.exists():
        if not args.overwrite:
            raise FileExistsError(f"{final} exists; pass --overwrite to replace it or choose another --repo-id")
        shutil.rmtree(final)
    tmp = home / f".{repo_id}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)

    # The episode length is the env's time limit + 1 so that gym never truncates a replay early. The env does not
    # render: kept episodes are rendered afterwards from their recorded physics states.
    image_hw = (args.image_height, args.image_width)
    env = make_gym_env(
        gym_task, max_episode_steps=args.episode_len + 1, image_hw=image_hw, render=False, fast_render=args.fast_render
    )
    ds = LeRobotDataset.create(
        repo_id,
        fps=FPS,
        features=aloha_features(image_hw, ENV_STATE_NAMES[gym_task] if args.privileged else None),
        root=tmp,
        robot_type="aloha",
        use_videos=True,
        vcodec="h264",
    )
    start = time.time()
    attempts = successes = kept = frames_total = 0
    sim_seconds = render_seconds = 0.0
    seed = args.seed
    while kept < args.num_episodes and attempts < args.num_episodes * args.max_attempts_factor:
        t0 = time.time()
        episode = rollout_scripted_episode(env, seed, args.episode_len, gym_task)
        sim_seconds += time.time() - t0
        reward = episode.max_reward
        attempts += 1
        ok = reward >= 4 and (episode.held_at_end or not args.require_hold)
        successes += ok
        logging.info(
            "episode seed=%d max_reward=%.0f held=%s %s", seed, reward, episode.held_at_end, "ok" if ok else "failed"
        )
        seed += 1
        if not ok and not args.keep_failures:
            continue
        env_states = episode.env_states
        t0 = time.time()
        for i, frame in enumerate(render_episode(env, episode, image_hw)):
            render_seconds += time.time() - t0
            item = {
                "observation.images.top": frame,
                "observation.state": episode.states[i],
                "action": episode.actions[i],
                "task": prompt,
            }
            if args.privileged:
                item["observation.environment_state"] = env_states[i]
            ds.add_frame(item)
            t0 = time.time()
        ds.save_episode()
        kept += 1
        frames_total += len(episode.states)
        print(
            f"[generate] episode {kept}/{args.num_episodes} (seed {seed - 1}, reward {reward:.0f}), "
            f"{time.time() - start:.0f}s elapsed",
            flush=True,
        )
    ds.finalize()
    env.close()
    if kept < args.num_episodes:
        raise RuntimeError(
            f"only {kept}/{args.num_episodes} successful episodes in {attempts} attempts; "
            "pass --keep-failures or raise --max-attempts-factor"
        )
    os.replace(tmp, final)
    return GenerationReport(
        final, kept, attempts, successes, frames_total, time.time() - start, sim_seconds, render_seconds
    )


def main(args: Args) -> None:
    report = generate(args)
    print(
        f"[generate] wrote {report.episodes} episodes ({report.frames} frames) to {report.root} in "
        f"{report.seconds:.0f}s (simulation {report.sim_seconds:.0f}s, rendering {report.render_seconds:.0f}s, "
        f"the rest encoding/writing); expert success rate {report.successes}/{report.attempts}"
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(tyro.cli(Args))
