"""ALOHA-sim client: runs gym-aloha episodes against a policy server (upstream `examples/aloha_sim/main.py` args).

make serve-aloha-sim        # terminal 1
make aloha-sim              # terminal 2 (= python -m aloha_sim.main)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib

import tyro

from aloha_sim.env import FPS
from aloha_sim.env import AlohaSimEnvironment
from aloha_sim.saver import VideoSaver


@dataclasses.dataclass
class Args:
    out_dir: pathlib.Path = pathlib.Path("data/aloha_sim/videos")
    task: str = "gym_aloha/AlohaTransferCube-v0"
    seed: int = 0
    action_horizon: int = 10
    """Actions executed from each returned chunk before the next query (plain chunking)."""
    host: str = "0.0.0.0"
    port: int = 8000
    api_key: str | None = None
    num_episodes: int = 1
    max_episode_steps: int = 400
    prompt: str | None = None
    """Prompt sent with each observation (the pi0_aloha_sim server injects "Transfer cube" when absent)."""
    display: bool = False  # kept for upstream CLI compatibility; rendering is always headless


@dataclasses.dataclass
class EpisodeStats:
    rewards: list[float] = dataclasses.field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return sum(r >= 4 for r in self.rewards) / max(len(self.rewards), 1)


class _RewardTracker:
    def __init__(self, env: AlohaSimEnvironment, stats: EpisodeStats):
        self._env, self._stats = env, stats

    def on_episode_start(self):
        pass

    def on_step(self, observation, action):
        pass

    def on_episode_end(self):
        self._stats.rewards.append(self._env.episode_reward)
        logging.info("episode %d: max reward %.0f", len(self._stats.rewards), self._env.episode_reward)


def run(args: Args) -> tuple[EpisodeStats, list[pathlib.Path]]:
    from openpi_client import action_chunk_broker
    from openpi_client import websocket_client_policy
    from openpi_client.runtime import runtime as _runtime
    from openpi_client.runtime.agents import policy_agent

    env = AlohaSimEnvironment(args.task, args.seed, max_episode_steps=args.max_episode_steps, prompt=args.prompt)
    policy = websocket_client_policy.WebsocketClientPolicy(args.host, args.port, api_key=args.api_key)
    logging.info("server metadata: %s", policy.get_server_metadata())
    agent = policy_agent.PolicyAgent(action_chunk_broker.ActionChunkBroker(policy, action_horizon=args.action_horizon))
    stats = EpisodeStats()
    saver = VideoSaver(args.out_dir, fps=FPS, env=env)
    runtime = _runtime.Runtime(
        environment=env,
        agent=agent,
        subscribers=[saver, _RewardTracker(env, stats)],
        max_hz=FPS,
        num_episodes=args.num_episodes,
        max_episode_steps=args.max_episode_steps,
    )
    runtime.run()
    summary = {
        "episodes": len(stats.rewards),
        "success_rate": stats.success_rate,
        "rewards": stats.rewards,
        "mean_max_reward": sum(stats.rewards) / max(len(stats.rewards), 1),
        "videos": [str(p) for p in saver.paths],
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"[aloha-sim] {summary['episodes']} episode(s), success rate {stats.success_rate:.2f}, "
        f"mean max reward {summary['mean_max_reward']:.2f}; videos in {args.out_dir}"
    )
    return stats, saver.paths


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, force=True)
    run(tyro.cli(Args))
