import abc


class Subscriber(abc.ABC):
    """Observes a runtime (recorders, video savers, metrics)."""

    @abc.abstractmethod
    def on_episode_start(self) -> None: ...

    @abc.abstractmethod
    def on_step(self, observation: dict, action: dict) -> None: ...

    @abc.abstractmethod
    def on_episode_end(self) -> None: ...
