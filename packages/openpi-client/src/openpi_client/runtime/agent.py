import abc


class Agent(abc.ABC):
    """Maps observations to actions."""

    @abc.abstractmethod
    def get_action(self, observation: dict) -> dict:
        """Return the action for `observation`."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Reset per-episode state."""
