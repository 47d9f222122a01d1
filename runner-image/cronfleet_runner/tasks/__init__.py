"""The built-in tasks of the shared runner image."""

from __future__ import annotations

from typing import Any

from cronfleet_runner.task import Task
from cronfleet_runner.tasks.command import command_task
from cronfleet_runner.tasks.http import http_task
from cronfleet_runner.tasks.python import python_task
from cronfleet_runner.tasks.sleep import sleep_task

BUILTIN_TASKS: tuple[Task[Any], ...] = (command_task, http_task, python_task, sleep_task)

__all__ = ["BUILTIN_TASKS"]
