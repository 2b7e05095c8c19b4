"""ActionChunkBroker and Runtime semantics with a toy environment."""

import time

import numpy as np
import pytest

from openpi_client import action_chunk_broker
from openpi_client import base_policy
from openpi_client.runtime import environment
from openpi_client.runtime import runtime
from openpi_client.runtime import subscriber
from openpi_client.runtime.agents import policy_agent


class ChunkPolicy(base_policy.BasePolicy):
    def __init__(self):
        self.calls = 0
        self.resets = 0

    def infer(self, obs):
        self.calls += 1
        return {"actions": np.arange(5 * 2).reshape(5, 2) + 100 * self.calls, "meta": {"t": np.ones(5)}, "tag": "x"}

    def reset(self):
        self.resets += 1


def test_broker_slices_every_array_leaf_and_requeries_after_horizon():
    inner = ChunkPolicy()
    broker = action_chunk_broker.ActionChunkBroker(inner, action_horizon=3)
    outs = [broker.infer({}) for _ in range(4)]
    assert inner.calls == 2
    np.testing.assert_array_equal(outs[0]["actions"], [100, 101])
    np.testing.assert_array_equal(outs[2]["actions"], [104, 105])
    np.testing.assert_array_equal(outs[3]["actions"], [200, 201])  # new chunk after 3 steps
    assert outs[1]["meta"]["t"] == 1.0 and outs[1]["tag"] == "x"
    broker.reset()
    assert inner.resets == 1
    np.testing.assert_array_equal(broker.infer({})["actions"], [300, 301])
    with pytest.raises(ValueError, match="action_horizon"):
        action_chunk_broker.ActionChunkBroker(inner, 0)


class CountingEnv(environment.Environment):
    def __init__(self, done_after):
        self.done_after = done_after
        self.resets = 0
        self.applied = []

    def reset(self):
        self.resets += 1
        self.t = 0

    def is_episode_complete(self):
        return self.t >= self.done_after

    def get_observation(self):
        return {"t": self.t}

    def apply_action(self, action):
        self.applied.append(action["actions"].tolist())
        self.t += 1


class Recorder(subscriber.Subscriber):
    def __init__(self):
        self.events = []

    def on_episode_start(self):
        self.events.append("start")

    def on_step(self, observation, action):
        self.events.append(observation["t"])

    def on_episode_end(self):
        self.events.append("end")


def test_runtime_episodes_max_steps_and_rate():
    env, rec = CountingEnv(done_after=4), Recorder()
    agent = policy_agent.PolicyAgent(action_chunk_broker.ActionChunkBroker(ChunkPolicy(), 2))
    rt = runtime.Runtime(env, agent, [rec], max_hz=50, num_episodes=2, max_episode_steps=0)
    start = time.monotonic()
    rt.run()
    took = time.monotonic() - start
    assert rec.events == ["start", 0, 1, 2, 3, "end", "start", 0, 1, 2, 3, "end"]
    assert env.resets == 3  # one per episode plus the final reset
    assert took >= 7 / 50 * 0.9  # paced at 50 Hz
    env2, rec2 = CountingEnv(done_after=100), Recorder()
    runtime.Runtime(env2, policy_agent.PolicyAgent(ChunkPolicy()), [rec2], max_episode_steps=3).run()
    assert rec2.events == ["start", 0, 1, 2, "end"]
