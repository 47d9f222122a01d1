"""Running a task under the contract, in-process: results, crashes, logs and stop handling."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from cronfleet_runner.contract import EXIT_RETRYABLE, EXIT_SUCCEEDED, EXIT_TERMINATED
from cronfleet_runner.execution import RunResult, execute, stop_grace_from
from cronfleet_runner.registry import Registry
from cronfleet_runner.task import Outcome, RunContext, TaskParams, task
from cronfleet_runner.tasks import BUILTIN_TASKS


class NoParams(TaskParams):
    pass


@task("crash", params=NoParams)
def crash(params: NoParams, context: RunContext) -> Outcome:
    raise RuntimeError("the database went away")


@task("wrong-return", params=NoParams)
def wrong_return(params: NoParams, context: RunContext) -> Outcome:
    return "done"  # type: ignore[return-value]


@task("stubborn", params=NoParams)
def stubborn(params: NoParams, context: RunContext) -> Outcome:
    # Asks for its own termination, then ignores the stop request.
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(1.0)
    return Outcome("too late")


REGISTRY = Registry((*BUILTIN_TASKS, crash, wrong_return, stubborn), entry_points=list)


def run(
    tmp_path: Path, task_name: str, params: dict[str, Any] | None = None, **environ: str
) -> tuple[RunResult, list[dict[str, Any]], dict[str, Any]]:
    message_file = tmp_path / "termination-log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CRONFLEET_TASK": task_name,
        "CRONFLEET_PARAMS": json.dumps(params or {}),
        "CRONFLEET_SCHEDULE": "tenant-acme/nightly-cleanup",
        "CRONFLEET_RUN": "nightly-cleanup-29123456",
        "CRONFLEET_TRIGGER": "Retry",
        "CRONFLEET_ATTEMPT": "2",
        "CRONFLEET_SCHEDULED_TIME": "2026-11-24T00:00:00Z",
        "CRONFLEET_TERMINATION_MESSAGE_PATH": str(message_file),
        **environ,
    }
    stdout = io.StringIO()
    result = execute(env, REGISTRY, stdout, stop_grace_seconds=0.2)
    events = [json.loads(line) for line in stdout.getvalue().splitlines()]
    summary = json.loads(message_file.read_text()) if message_file.exists() else {}
    return result, events, summary


def test_every_log_line_carries_the_run_metadata(tmp_path: Path) -> None:
    result, events, summary = run(tmp_path, "sleep", {"seconds": 0})
    assert result.exit_code == EXIT_SUCCEEDED
    assert summary == {"result": "Succeeded", "message": "Slept 0s."}
    assert [e["event"] for e in events] == [
        "run.started",
        "task.started",
        "sleep.waiting",
        "run.finished",
    ]
    for event in events:
        assert event["schedule"] == "tenant-acme/nightly-cleanup"
        assert event["run"] == "nightly-cleanup-29123456"
        assert (event["task"], event["trigger"], event["attempt"]) == ("sleep", "Retry", 2)
        assert event["scheduledTime"] == "2026-11-24T00:00:00Z"
        assert event["ts"].endswith("Z") and event["level"] in ("info", "warning", "error")
    finished = events[-1]
    assert (finished["result"], finished["exitCode"]) == ("Succeeded", 0)
    assert finished["durationSeconds"] >= 0


def test_an_after_run_names_its_upstream_on_every_log_line(tmp_path: Path) -> None:
    upstream = {
        "CRONFLEET_TRIGGER": "After",
        "CRONFLEET_UPSTREAM": "tenant-acme/ingest",
        "CRONFLEET_UPSTREAM_RUN": "ingest-m-1a2b3c4d",
        "CRONFLEET_UPSTREAM_RESULT": "Succeeded",
        "CRONFLEET_UPSTREAM_DATA": '{"return":{"rows":42}}',
    }
    _, events, _ = run(tmp_path, "sleep", None, **upstream)
    assert events and all(e["upstream"] == "tenant-acme/ingest" for e in events)
    _, events, _ = run(tmp_path, "sleep")
    assert events and all(e["upstream"] is None for e in events)


def test_param_values_are_not_logged(tmp_path: Path) -> None:
    result, events, _ = run(tmp_path, "command", {"argv": ["true"], "env": {"TOKEN": "s3cret"}})
    assert result.exit_code == EXIT_SUCCEEDED
    [started] = [e for e in events if e["event"] == "task.started"]
    assert started["params"] == ["argv", "env"]
    assert not any("s3cret" in json.dumps(e) for e in events)


def test_an_unexpected_exception_is_a_retryable_failure_with_a_logged_traceback(
    tmp_path: Path,
) -> None:
    result, events, summary = run(tmp_path, "crash")
    assert result.exit_code == EXIT_RETRYABLE
    assert summary == {
        "result": "Failed",
        "message": "Task 'crash' failed unexpectedly with RuntimeError: the database went away",
    }
    [crashed] = [e for e in events if e["event"] == "task.crashed"]
    assert crashed["level"] == "error"
    assert 'raise RuntimeError("the database went away")' in crashed["traceback"]


def test_a_task_that_returns_no_outcome_fails(tmp_path: Path) -> None:
    result, _, summary = run(tmp_path, "wrong-return")
    assert result.exit_code == EXIT_RETRYABLE
    assert "returned str instead of an Outcome" in summary["message"]


def test_a_task_that_ignores_sigterm_is_abandoned_after_the_grace(tmp_path: Path) -> None:
    disposition = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    result, events, summary = run(tmp_path, "stubborn")
    assert time.monotonic() - started < 0.9
    assert result.exit_code == EXIT_TERMINATED == 143
    assert result.task_still_running
    assert summary["result"] == "Failed"
    assert summary["message"].startswith("Terminated by SIGTERM after ")
    assert "the task did not stop within 0.2s and was abandoned" in summary["message"]
    assert summary["data"] == {"signal": "SIGTERM"}
    names = [e["event"] for e in events]
    assert names[-3:] == ["run.stopping", "task.abandoned", "run.finished"]
    # The runner's handler is gone again: the disposition from before is back.
    assert signal.getsignal(signal.SIGTERM) == disposition


def test_an_unwritable_termination_message_is_logged_and_the_exit_code_stands(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "no-such-dir" / "termination-log")
    result, events, _ = run(
        tmp_path, "sleep", {"exitCode": 1}, CRONFLEET_TERMINATION_MESSAGE_PATH=path
    )
    assert result.exit_code == EXIT_RETRYABLE
    [warning] = [e for e in events if e["event"] == "termination_message.unwritten"]
    assert warning["path"] == path


def test_a_malformed_attempt_is_kept_and_warned_about(tmp_path: Path) -> None:
    _, events, _ = run(tmp_path, "sleep", CRONFLEET_ATTEMPT="second")
    assert all(e["attempt"] is None and e["attemptRaw"] == "second" for e in events)
    assert any(e["event"] == "run.environment_invalid" for e in events)


@pytest.mark.parametrize("exit_code", [1, 2, 3, 137])
def test_the_drill_task_exits_with_the_code_it_is_given(tmp_path: Path, exit_code: int) -> None:
    result, _, summary = run(
        tmp_path, "sleep", {"seconds": 0.01, "exitCode": exit_code, "message": "drill"}
    )
    assert result.exit_code == exit_code
    assert summary == {"result": "Failed", "message": "drill"}


@pytest.mark.parametrize(
    ("value", "seconds", "warned"),
    [
        ("", 5.0, False),
        ("12.5", 12.5, False),
        ("0", 0.0, False),
        ("soon", 5.0, True),
        ("-1", 5.0, True),
    ],
)
def test_the_stop_grace_comes_from_the_environment(
    value: str, seconds: float, warned: bool
) -> None:
    grace, problem = stop_grace_from({"CRONFLEET_STOP_GRACE_SECONDS": value})
    assert grace == seconds
    assert (problem is not None) == warned
    if problem:
        assert problem.startswith("CRONFLEET_STOP_GRACE_SECONDS should be a number of seconds")
