"""The ``cronfleet-runner`` command, the entrypoint of the shared runner image.

Without options it runs the task named by ``CRONFLEET_TASK`` under the runner
contract. ``--list`` shows the tasks and their params schemas; ``--check``
validates ``CRONFLEET_TASK``/``CRONFLEET_PARAMS`` without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from cronfleet_runner import __version__
from cronfleet_runner.contract import (
    ENV_PARAMS,
    ENV_TASK,
    EXIT_PERMANENT,
    EXIT_RETRYABLE,
    EXIT_SUCCEEDED,
)
from cronfleet_runner.execution import execute
from cronfleet_runner.params import parse_params_json
from cronfleet_runner.registry import Registry, default_registry
from cronfleet_runner.task import TaskFailure


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cronfleet-runner",
        description="Run a cronfleet task: the task named by CRONFLEET_TASK with the JSON "
        "params in CRONFLEET_PARAMS. Exit 0 on success, 1 on a failure worth retrying, "
        "2 on a permanent failure, 143 when stopped by SIGTERM.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--list", action="store_true", help="list the tasks and their params' JSON schemas"
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help="validate the task and params without running (exit 0 valid, 2 invalid)",
    )
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output for --list and --check"
    )
    parser.add_argument("--task", help=f"use this task instead of ${ENV_TASK}")
    parser.add_argument("--params", help=f"use these JSON params instead of ${ENV_PARAMS}")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def list_tasks(registry: Registry, as_json: bool, out: TextIO, err: TextIO) -> int:
    tasks, errors = registry.load_all()
    if as_json:
        document = {
            "tasks": [
                {
                    "name": task.name,
                    "summary": task.summary,
                    "origin": task.origin,
                    "paramsSchema": task.params_schema(),
                }
                for task in tasks
            ],
            "errors": [
                {"name": error.name, "origin": error.origin, "message": error.message}
                for error in errors
            ],
        }
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        for task in tasks:
            out.write(f"{task.name}  ({task.origin})\n  {task.summary}\n  params schema:\n")
            schema = json.dumps(task.params_schema(), indent=2)
            out.write("".join(f"    {line}\n" for line in schema.splitlines()))
            out.write("\n")
        for error in errors:
            err.write(f"cronfleet-runner: {error.message}\n")
    # A plugin that cannot load is a broken image: `RUN cronfleet-runner --list`
    # in a derived image's Dockerfile fails the build.
    return EXIT_RETRYABLE if errors else EXIT_SUCCEEDED


def check(
    registry: Registry, environ: Mapping[str, str], as_json: bool, out: TextIO, err: TextIO
) -> int:
    name = environ.get(ENV_TASK, "").strip()
    try:
        registry.get(name).validate(parse_params_json(environ.get(ENV_PARAMS)))
    except TaskFailure as failure:
        if as_json:
            out.write(json.dumps({"valid": False, "task": name, "message": failure.message}))
            out.write("\n")
        else:
            err.write(failure.message + "\n")
        return EXIT_PERMANENT
    message = f"Task '{name}' accepts these params."
    if as_json:
        out.write(json.dumps({"valid": True, "task": name, "message": message}) + "\n")
    else:
        out.write(message + "\n")
    return EXIT_SUCCEEDED


def run(argv: Sequence[str] | None = None, registry: Registry | None = None) -> tuple[int, bool]:
    """Exit code, and whether a stopped task thread is still running."""
    args = _parser().parse_args(argv)
    environ = dict(os.environ)
    if args.task is not None:
        environ[ENV_TASK] = args.task
    if args.params is not None:
        environ[ENV_PARAMS] = args.params
    registry = registry or default_registry()
    if args.list:
        return list_tasks(registry, args.json, sys.stdout, sys.stderr), False
    if args.check:
        return check(registry, environ, args.json, sys.stdout, sys.stderr), False
    result = execute(environ, registry, sys.stdout)
    return result.exit_code, result.task_still_running


def main(argv: Sequence[str] | None = None) -> None:
    code, task_still_running = run(argv)
    if task_still_running:
        # A task that ignored the stop request may hold the interpreter's
        # shutdown (a non-daemon thread, a blocking call): leave without it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
