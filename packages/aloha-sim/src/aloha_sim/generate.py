"""Generate scripted ALOHA-sim demonstrations (transfer-cube or insertion) as a LeRobot dataset.

The dataset has the features of `lerobot/aloha_sim_transfer_cube_human` (top camera video, 14-d state and action,
50 fps), so the `pi0_aloha_sim` data config (and our tiny `debug_pi05_aloha_sim`) read it unchanged.

    python -m aloha_sim.generate --repo-id aloha_sim_scripted --num-episodes 20
    python -m aloha_sim.generate --task insertion --num-episodes 20      # -> aloha_sim_insertion_scripted
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


def aloha_features(image_hw: tuple[int, int]) -> dict:
    h, w = image_hw
    return {
        "observation.images.top": {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channel"]},
        "observation.state": {"dtype": "float32", "shape": (14,), "names": [MOTORS]},
        "action": {"dtype": "float32", "shape": (14,), "names": [MOTORS]},
    }


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

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.attempts, 1)


def lerobot_home() -> pathlib.Path:
    return pathlib.Path(os.environ.get("HF_LEROBOT_HOME", pathlib.Path.home() / ".cache/huggingface/lerobot"))


def rollout_scripted_episode(env, seed: int, episode_len: int, task: str = "gym_aloha/AlohaTransferCube-v0"):
    """Runs the scripted expert of `task` for the object poses of `seed` in the joint-space env and returns
    (frames [T,H,W,3] uint8, states [T,14], actions [T,14], max_reward).

    Transfer-cube plans the whole joint trajectory first and replays it; insertion runs closed-loop on the env."""
    if resolve_task(task) == "gym_aloha/AlohaInsertion-v0":
        from aloha_sim.scripted_insertion import rollout_insertion

        return rollout_insertion(env, seed, episode_len)
    from gym_aloha.utils import sample_box_pose

    from aloha_sim.scripted import plan_transfer_cube_joints

    joints = plan_transfer_cube_joints(sample_box_pose(seed), episode_len)
    obs, _ = env.reset(seed=seed)
    frames, states, actions, max_reward = [], [], [], 0.0
    for t in range(episode_len):
        frames.append(obs["pixels"]["top"])
        states.append(np.asarray(obs["agent_pos"], dtype=np.float32))
        actions.append(joints[t].astype(np.float32))
        obs, reward, _, _, _ = env.step(joints[t])
        max_reward = max(max_reward, float(reward))
    return np.stack(frames), np.stack(states), np.stack(actions), max_reward


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

    # The episode length is the env's time limit + 1 so that gym never truncates a replay early.
    env = make_gym_env(gym_task, max_episode_steps=args.episode_len + 1, image_hw=(args.image_height, args.image_width))
    ds = LeRobotDataset.create(
        repo_id,
        fps=FPS,
        features=aloha_features((args.image_height, args.image_width)),
        root=tmp,
        robot_type="aloha",
        use_videos=True,
        vcodec="h264",
    )
    start = time.time()
    attempts = successes = kept = frames_total = 0
    seed = args.seed
    while kept < args.num_episodes and attempts < args.num_episodes * args.max_attempts_factor:
        frames, states, actions, reward = rollout_scripted_episode(env, seed, args.episode_len, gym_task)
        attempts += 1
        ok = reward >= 4
        successes += ok
        logging.info("episode seed=%d max_reward=%.0f %s", seed, reward, "ok" if ok else "failed")
        seed += 1
        if not ok and not args.keep_failures:
            continue
        for i in range(len(frames)):
            ds.add_frame(
                {
                    "observation.images.top": frames[i],
                    "observation.state": states[i],
                    "action": actions[i],
                    "task": prompt,
                }
            )
        ds.save_episode()
        kept += 1
        frames_total += len(frames)
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
    return GenerationReport(final, kept, attempts, successes, frames_total, time.time() - start)


def main(args: Args) -> None:
    report = generate(args)
    print(
        f"[generate] wrote {report.episodes} episodes ({report.frames} frames) to {report.root} in "
        f"{report.seconds:.0f}s; expert success rate {report.successes}/{report.attempts}"
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(tyro.cli(Args))
