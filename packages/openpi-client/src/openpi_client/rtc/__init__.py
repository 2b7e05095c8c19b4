"""Real-time chunk execution on the robot side (shared by every robot client).

`make_executor("rtc" | "naive" | "sync" | "ensemble", policy, control_hz=...)` returns a `BasePolicy` that yields
one action per control step; see `executor.py` for the modes and `metrics.py` for what is measured.
"""

from openpi_client.rtc.executor import KINDS
from openpi_client.rtc.executor import AsyncChunkExecutor
from openpi_client.rtc.executor import PolicyServerLostError
from openpi_client.rtc.executor import SyncChunkExecutor
from openpi_client.rtc.executor import TemporalEnsembleExecutor
from openpi_client.rtc.executor import make_executor
from openpi_client.rtc.metrics import DelayEstimator
from openpi_client.rtc.metrics import ExecutionMetrics

__all__ = [
    "KINDS",
    "AsyncChunkExecutor",
    "DelayEstimator",
    "ExecutionMetrics",
    "SyncChunkExecutor",
    "TemporalEnsembleExecutor",
    "PolicyServerLostError",
    "make_executor",
]
