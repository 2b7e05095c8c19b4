"""Closed-loop evaluation of a served policy on gym-aloha, with inference delay simulated in control steps.

    make sim-eval PORT=8000 ARGS="--num-episodes 50 --privileged"     # a policy served by scripts/serve_policy.py
    python -m aloha_sim.evaluate --executor rtc --delay 5 ...

Each episode uses a fixed seed (`--seed` + i, default 100000 + i: disjoint from the demonstration seeds 0..N that
`aloha_sim.generate` uses). The simulator pauses while the model computes, so results do not depend on CPU speed;
an inference delay of d steps means a chunk requested at step t with observation o_t becomes usable at step t + d:

- `sync`: the arm holds its last command for d steps, then executes the new chunk from its first action;
- `naive`: the previous chunk keeps running for d steps, then the new one takes over at index d;
- `rtc`: as naive, and the request carries the previous chunk's not-yet-executed actions (`prev_actions`) and
  `inference_delay` = d, so the server inpaints the new chunk to agree with them (real-time chunking);
- `ensemble`: ACT temporal ensembling: a chunk every max(d, ensemble_stride) steps, each step executes the weighted
  mean of every available chunk's prediction for it, w_i = exp(-m i), i = 0 the oldest.

Only the frames the policy consumes are rendered. Videos: each episode's action sequence is kept and, at the end, one
success and one failure are replayed (same seed, same actions: MuJoCo is deterministic) with rendering on.
Writes `summary.json` (success rate with its 95% Wilson interval, mean max reward, episode time, jerk) and, unless
`--no-expert`, evaluates the scripted expert on the same seeds as a reference row.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
import time

import numpy as np
import tyro

from aloha_sim.env import FPS
from aloha_sim.env import convert_observation
from aloha_sim.env import make_gym_env
from aloha_sim.env import object_state

EXECUTORS = ("sync", "naive", "rtc", "ensemble")
EVAL_SEED = 100_000
SUCCESS_REWARD = 4


@dataclasses.dataclass
class Args:
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    task: str = "gym_aloha/AlohaTransferCube-v0"
    num_episodes: int = 50
    seed: int = EVAL_SEED
    """Episode i uses seed `seed + i` (demonstrations use 0..N-1)."""
    executor: str = "sync"
    """sync | naive | rtc | ensemble"""
    execute_horizon: int = 25
    """s: actions executed from each chunk before the next request (sync/naive/rtc)."""
    delay: int = 0
    """d: inference delay in control steps (50 Hz)."""
    ensemble_m: float = 0.01
    ensemble_stride: int = 5
    privileged: bool = False
    """Send the simulator's cube pose as obs["env_state"] (for policies trained with the privileged state)."""
    image_height: int = 120
    image_width: int = 160
    fast_render: bool = True
    """Render as the training data was rendered (aloha_sim.generate --fast-render)."""
    max_episode_steps: int = 400
    prompt: str | None = None
    videos: bool = True
    video_height: int = 240
    video_width: int = 320
    expert: bool = True
    """Also evaluate the scripted expert on the same seeds (a reference row)."""
    out_dir: pathlib.Path = pathlib.Path("outputs/sim_eval")
    progress: bool = True


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class DelayedChunkRunner:
    """One action per control step from a chunk policy, with inference taking exactly `delay` steps."""

    def __init__(self, request, *, kind: str, execute_horizon: int, delay: int, m: float = 0.01, stride: int = 5):
        if kind not in EXECUTORS:
            raise ValueError(f"executor={kind!r}: use one of {EXECUTORS}")
        if delay < 0 or execute_horizon < 1:
            raise ValueError(f"need delay >= 0 and execute_horizon >= 1 (got {delay}, {execute_horizon})")
        self._request, self.kind, self.s, self.d = request, kind, execute_horizon, delay
        self._m, self._stride = m, max(stride, delay, 1)
        self.requests = 0
        self.swaps: list[int] = []

    def reset(self) -> None:
        self._cur: np.ndarray | None = None  # executing chunk
        self._idx = 0  # index of the next action in it
        self._pending: tuple[np.ndarray, int, int] | None = None  # (chunk, ready step, start index)
        self._since_request = 0
        self._last: np.ndarray | None = None
        self._ens: list[tuple[int, np.ndarray]] = []  # (step of o_t, chunk)
        self.requests, self.swaps = 0, []

    def _ask(self, obs: dict, prev: np.ndarray | None = None) -> np.ndarray:
        self.requests += 1
        if prev is not None and len(prev):
            obs = {**obs, "prev_actions": prev.astype(np.float32), "inference_delay": np.int64(self.d)}
        chunk = np.asarray(self._request(obs)["actions"], dtype=np.float64)
        if chunk.ndim != 2:
            raise ValueError(f"policy returned actions of shape {chunk.shape}; expected [horizon, action_dim]")
        return chunk

    def act(self, t: int, obs_fn, state: np.ndarray) -> np.ndarray:
        """The action for step t; `obs_fn()` renders the observation (called only when a request is made)."""
        if self.kind == "ensemble":
            return self._act_ensemble(t, obs_fn, state)
        if self._pending is not None and t >= self._pending[1]:
            self._cur, _, self._idx = self._pending
            self._pending = None
            self.swaps.append(t)
        need = self._cur is None or self._since_request >= self.s
        if self._pending is None and need:
            if self.kind == "sync" and self._cur is not None and self._idx < self.s:
                pass  # sync requests only once the chunk's s actions are done
            else:
                prev = None
                if self.kind == "rtc" and self._cur is not None:
                    prev = self._cur[self._idx :]
                chunk = self._ask(obs_fn(), prev)
                # The first chunk starts at its first action (the arm did not move while it was computed).
                start = 0 if self.kind == "sync" or self._cur is None else self.d
                self._since_request = 0
                if self.d == 0:
                    self._cur, self._idx = chunk, 0
                    self.swaps.append(t)
                else:
                    self._pending = (chunk, t + self.d, start)
                    if self.kind == "sync":
                        self._cur = None  # hold still while the model computes
        self._since_request += 1
        if self._cur is None or self._idx >= len(self._cur):
            action = self._last if self._last is not None else np.asarray(state, dtype=np.float64)
        else:
            action = self._cur[self._idx]
            self._idx += 1
        self._last = action
        return action

    def _act_ensemble(self, t: int, obs_fn, state: np.ndarray) -> np.ndarray:
        if self._pending is not None and t >= self._pending[1]:
            self._ens.append((self._pending[2], self._pending[0]))
            self._pending = None
            self.swaps.append(t)
        if self._pending is None and (not self._ens or t - self._ens[-1][0] >= self._stride):
            chunk = self._ask(obs_fn())
            if self.d == 0:
                self._ens.append((t, chunk))
                self.swaps.append(t)
            else:
                self._pending = (chunk, t + self.d, t)
        self._ens = [(t0, c) for t0, c in self._ens if t - t0 < len(c)]
        if not self._ens:
            action = self._last if self._last is not None else np.asarray(state, dtype=np.float64)
        else:
            preds = np.stack([c[t - t0] for t0, c in self._ens])
            w = np.exp(-self._m * np.arange(len(preds)))
            action = (w[:, None] * preds).sum(0) / w.sum()
        self._last = action
        return action


def jerk_stats(actions: np.ndarray) -> dict:
    """|a_t - 2 a_{t-1} + a_{t-2}| per step (L2 over joints), as bench/bench_rtc.py defines it."""
    if len(actions) < 3:
        return {"jerk_mean": 0.0, "jerk_max": 0.0}
    jerk = np.linalg.norm(np.diff(actions, 2, axis=0), axis=-1)
    return {"jerk_mean": float(jerk.mean()), "jerk_max": float(jerk.max())}


def run_episode(env, runner: DelayedChunkRunner, seed: int, args: Args) -> dict:
    gym_obs, _ = env.reset(seed=seed)
    physics = env.unwrapped._env.physics
    runner.reset()
    from dm_control.rl.control import PhysicsError

    actions, max_reward, success_step, physics_error = [], 0.0, None, False
    start = time.time()
    for t in range(args.max_episode_steps):
        state = np.asarray(gym_obs["agent_pos"], dtype=np.float32)

        def observe(state=state, physics=physics):
            image = physics.render(height=args.image_height, width=args.image_width, camera_id="top")
            obs = convert_observation({"pixels": {"top": image}, "agent_pos": state}, resize=None)
            if args.privileged:
                obs["env_state"] = object_state(physics)
            if args.prompt:
                obs["prompt"] = args.prompt
            return obs

        action = runner.act(t, observe, state)
        actions.append(action)
        try:
            gym_obs, reward, terminated, truncated, _ = env.step(action)
        except PhysicsError as e:  # the policy drove the simulation unstable: a failed episode, not a crash
            logging.warning("seed %d: physics became unstable at step %d (%s); episode counted as failed", seed, t, e)
            physics_error = True
            break
        max_reward = max(max_reward, float(reward))
        if max_reward >= SUCCESS_REWARD:
            success_step = t + 1
            break
        if terminated or truncated:
            break
    actions = np.stack(actions)
    return {
        "seed": seed,
        "success": success_step is not None,
        "max_reward": max_reward,
        "episode_time_s": (success_step or len(actions)) / FPS,
        "requests": runner.requests,
        "physics_error": physics_error,
        "wall_s": time.time() - start,
        **jerk_stats(actions),
        "_actions": actions,
    }


def replay_video(task: str, seed: int, actions: np.ndarray, path: pathlib.Path, hw=(240, 320)) -> pathlib.Path:
    """Re-run an episode's actions from its seed with rendering on and write the mp4 (atomic)."""
    from dm_control.rl.control import PhysicsError

    from aloha_sim.saver import write_video

    env = make_gym_env(task, max_episode_steps=len(actions) + 1, image_hw=hw)
    obs, _ = env.reset(seed=seed)
    frames = [obs["pixels"]["top"]]
    for a in actions:
        try:
            obs, *_ = env.step(a)
        except PhysicsError:  # the episode ended the same way when it was evaluated
            break
        frames.append(obs["pixels"]["top"])
    env.close()
    return write_video(path, frames, FPS)


def summarize(rows: list[dict]) -> dict:
    n = len(rows)
    ok = sum(r["success"] for r in rows)
    lo, hi = wilson_interval(ok, n)
    return {
        "episodes": n,
        "successes": ok,
        "success_rate": ok / max(n, 1),
        "success_ci95": [lo, hi],
        "mean_max_reward": float(np.mean([r["max_reward"] for r in rows])) if rows else 0.0,
        "mean_episode_time_s": float(np.mean([r["episode_time_s"] for r in rows])) if rows else 0.0,
        "jerk_mean": float(np.mean([r["jerk_mean"] for r in rows])) if rows else 0.0,
    }


def evaluate_expert(task: str, seeds: list[int], max_steps: int) -> list[dict]:
    from aloha_sim.scripted import make_expert

    env = make_gym_env(task, max_episode_steps=max_steps + 1, render=False)
    rows = []
    for seed in seeds:
        expert = make_expert(task, seed)
        obs, _ = env.reset(seed=seed)
        physics = env.unwrapped._env.physics
        max_reward, success_step, actions = 0.0, None, []
        for t in range(max_steps):
            action = expert.act(t, physics)
            actions.append(action)
            obs, reward, *_ = env.step(action)
            max_reward = max(max_reward, float(reward))
            if max_reward >= SUCCESS_REWARD and success_step is None:
                success_step = t + 1
        rows.append(
            {
                "seed": seed,
                "success": success_step is not None,
                "max_reward": max_reward,
                "episode_time_s": (success_step or max_steps) / FPS,
                **jerk_stats(np.stack(actions)),
            }
        )
    env.close()
    return rows


def _line(name: str, s: dict) -> str:
    lo, hi = s["success_ci95"]
    return (
        f"| {name} | {s['successes']}/{s['episodes']} = {100 * s['success_rate']:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}] "
        f"| {s['mean_max_reward']:.2f} | {s['mean_episode_time_s']:.2f} | {s['jerk_mean']:.4f} |"
    )


def run(args: Args) -> dict:
    import tqdm

    from openpi_client import websocket_client_policy

    policy = websocket_client_policy.WebsocketClientPolicy(args.host, args.port, api_key=args.api_key)
    metadata = policy.get_server_metadata()
    logging.info("server metadata: %s", metadata)
    runner = DelayedChunkRunner(
        policy.infer,
        kind=args.executor,
        execute_horizon=args.execute_horizon,
        delay=args.delay,
        m=args.ensemble_m,
        stride=args.ensemble_stride,
    )
    env = make_gym_env(
        args.task,
        max_episode_steps=args.max_episode_steps + 1,
        image_hw=(args.image_height, args.image_width),
        render=False,
        fast_render=args.fast_render,
    )
    seeds = [args.seed + i for i in range(args.num_episodes)]
    rows = []
    bar = tqdm.tqdm(seeds, desc=f"sim-eval {args.executor} d={args.delay}", disable=not args.progress, unit="ep")
    for seed in bar:
        rows.append(run_episode(env, runner, seed, args))
        s = summarize(rows)
        bar.set_postfix(success=f"{s['successes']}/{s['episodes']}", reward=f"{s['mean_max_reward']:.2f}")
    env.close()
    summary = {
        "policy": summarize(rows),
        "config": {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in dataclasses.asdict(args).items()},
        "server_metadata": {k: v for k, v in metadata.items() if isinstance(v, (str, int, float, bool, list, dict))},
        "episodes": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
    }
    if args.expert:
        expert_rows = evaluate_expert(args.task, seeds, args.max_episode_steps)
        summary["expert"] = summarize(expert_rows)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.videos:
        videos = {}
        for label, want in (("success", True), ("failure", False)):
            pick = next((r for r in rows if r["success"] == want), None)
            if pick is not None:
                path = args.out_dir / f"{label}_seed{pick['seed']}.mp4"
                hw = (args.video_height, args.video_width)
                videos[label] = str(replay_video(args.task, pick["seed"], pick["_actions"], path, hw))
        summary["videos"] = videos
    tmp = args.out_dir / ".summary.json.partial"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(args.out_dir / "summary.json")
    print("| policy | success [95% CI] | mean max reward | episode time (s) | mean jerk |")
    print("|---|---|---|---|---|")
    print(_line(f"served policy ({args.executor}, d={args.delay})", summary["policy"]))
    if "expert" in summary:
        print(_line("scripted expert (same seeds)", summary["expert"]))
    print(f"[sim-eval] summary: {args.out_dir / 'summary.json'}")
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, force=True)
    run(tyro.cli(Args))
