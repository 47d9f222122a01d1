"""The shared runner of cronfleet Schedules.

What a task author needs is importable from here::

    from cronfleet_runner import Outcome, PermanentFailure, RunContext, TaskParams, task
"""

from __future__ import annotations

import importlib.metadata

from cronfleet_runner.task import (
    FunctionTask,
    Outcome,
    PermanentFailure,
    RetryableFailure,
    RunContext,
    Task,
    TaskFailure,
    TaskParams,
    task,
)

try:
    __version__ = importlib.metadata.version("cronfleet-runner")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree
    __version__ = "0+unknown"

__all__ = [
    "FunctionTask",
    "Outcome",
    "PermanentFailure",
    "RetryableFailure",
    "RunContext",
    "Task",
    "TaskFailure",
    "TaskParams",
    "__version__",
    "task",
]
