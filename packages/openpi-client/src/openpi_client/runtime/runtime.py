"""The control loop: environment -> agent -> environment, with subscribers, episodes and rate limiting."""

import logging
import threading
import time

from openpi_client.runtime import agent as _agent
from openpi_client.runtime import environment as _environment
from openpi_client.runtime import subscriber as _subscriber

logger = logging.getLogger("openpi_client.runtime")


class Runtime:
    def __init__(
        self,
        environment: _environment.Environment,
        agent: _agent.Agent,
        subscribers: list[_subscriber.Subscriber],
        max_hz: float = 0,
        num_episodes: int = 1,
        max_episode_steps: int = 0,
    ) -> None:
        self._environment = environment
        self._agent = agent
        self._subscribers = subscribers
        self._max_hz = max_hz
        self._num_episodes = num_episodes
        self._max_episode_steps = max_episode_steps
        self._in_episode = False
        self._episode_steps = 0
        self._stop = threading.Event()

    def run(self) -> None:
        """Run `num_episodes` episodes, then reset the environment once more."""
        for _ in range(self._num_episodes):
            if self._stop.is_set():
                break
            self._run_episode()
        self._environment.reset()

    def run_in_new_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread

    def mark_episode_complete(self) -> None:
        """End the current episode after the step in progress (e.g. from a keyboard handler)."""
        self._in_episode = False

    def stop(self) -> None:
        """Stop after the step in progress and do not start further episodes."""
        self._stop.set()
        self._in_episode = False

    def _run_episode(self) -> None:
        logger.info("Starting episode...")
        self._environment.reset()
        self._agent.reset()
        for s in self._subscribers:
            s.on_episode_start()
        self._in_episode = True
        self._episode_steps = 0
        period = 1.0 / self._max_hz if self._max_hz > 0 else 0.0
        last_step = time.monotonic()
        while self._in_episode:
            self._step()
            self._episode_steps += 1
            if period:
                now = time.monotonic()
                sleep = period - (now - last_step)
                if sleep > 0:
                    time.sleep(sleep)
                    last_step = time.monotonic()
                else:
                    last_step = now
        logger.info("Episode completed after %d steps.", self._episode_steps)
        for s in self._subscribers:
            s.on_episode_end()

    def _step(self) -> None:
        observation = self._environment.get_observation()
        action = self._agent.get_action(observation)
        self._environment.apply_action(action)
        for s in self._subscribers:
            s.on_step(observation, action)
        if self._environment.is_episode_complete() or (
            self._max_episode_steps > 0 and self._episode_steps + 1 >= self._max_episode_steps
        ):
            self.mark_episode_complete()
