import abc


class Environment(abc.ABC):
    """A robot or simulator the runtime steps."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Start a new episode."""

    @abc.abstractmethod
    def is_episode_complete(self) -> bool:
        """True when the current episode has ended."""

    @abc.abstractmethod
    def get_observation(self) -> dict:
        """The current observation."""

    @abc.abstractmethod
    def apply_action(self, action: dict) -> None:
        """Execute one action."""
