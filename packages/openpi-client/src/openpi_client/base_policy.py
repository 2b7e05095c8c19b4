"""The policy interface every client-side policy (remote or local wrapper) implements."""

import abc


class BasePolicy(abc.ABC):
    @abc.abstractmethod
    def infer(self, obs: dict) -> dict:
        """Return the action dict for one observation dict."""

    def reset(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Reset per-episode state (no-op by default)."""
