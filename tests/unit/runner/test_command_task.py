"""The ``command`` task, running real programs."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cronfleet_runner.contract import EXIT_PERMANENT, EXIT_RETRYABLE
from cronfleet_runner.params import InvalidParams, validate_params
from cronfleet_runner.task import Outcome, TaskFailure
from cronfleet_runner.tasks.command import CommandParams, command_task
from tests.unit.runner.conftest import ContextFactory, Recording

ENVIRON = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def params(**given: Any) -> CommandParams:
    validated = validate_params(CommandParams, given, "command")
    assert isinstance(validated, CommandParams)
    return validated


def call(recording: Recording, **given: Any) -> Outcome:
    return command_task.run(params(**given), recording.context)


def failure(recording: Recording, **given: Any) -> TaskFailure:
    with pytest.raises(TaskFailure) as raised:
        call(recording, **given)
    return raised.value


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; its state in /proc says it is gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_exit_zero_succeeds_and_output_becomes_log_lines(make_context: ContextFactory) -> None:
    recording = make_context(ENVIRON)
    outcome = call(recording, argv=["sh", "-c", "echo hello; echo warning >&2"])
    assert outcome.message.startswith("Command sh -c 'echo hello; echo warning >&2' exited 0")
    assert outcome.data == {"exitCode": 0}
    lines = {(event["stream"], event["line"]) for event in recording.events("command.output")}
    assert lines == {("stdout", "hello"), ("stderr", "warning")}
    [exited] = recording.events("command.exited")
    assert exited["exitCode"] == 0


def test_a_non_zero_exit_is_retryable_with_the_tail_of_stderr(
    make_context: ContextFactory,
) -> None:
    script = "for i in $(seq 1 30); do echo line-$i >&2; done; echo out; exit 3"
    failed = failure(make_context(ENVIRON), argv=["sh", "-c", script])
    assert failed.exit_code == EXIT_RETRYABLE
    assert "exited with code 3 after" in failed.message
    assert failed.message.endswith(
        "stderr ends with:\n" + "\n".join(f"line-{i}" for i in range(11, 31))
    )
    assert failed.data == {"exitCode": 3}


def test_stdout_stands_in_when_stderr_is_empty(make_context: ContextFactory) -> None:
    failed = failure(make_context(ENVIRON), argv=["sh", "-c", "echo 'no rows to export'; exit 1"])
    assert failed.message.endswith("stdout ends with:\nno rows to export")


def test_permanent_exit_codes_end_the_run_with_exit_two(make_context: ContextFactory) -> None:
    failed = failure(
        make_context(ENVIRON), argv=["sh", "-c", "exit 64"], permanentExitCodes=[64, 65]
    )
    assert failed.exit_code == EXIT_PERMANENT
    assert "exited with code 64" in failed.message


def test_a_timeout_stops_the_program_and_its_children(make_context: ContextFactory) -> None:
    recording = make_context(ENVIRON)
    started = time.monotonic()
    failed = failure(
        recording,
        argv=["sh", "-c", "sleep 30 & echo child=$!; echo waiting >&2; wait"],
        timeoutSeconds=0.3,
    )
    assert time.monotonic() - started < 3
    assert failed.exit_code == EXIT_RETRYABLE
    assert "did not finish within params.timeoutSeconds=0.3s and was stopped" in failed.message
    assert "stderr ends with:\nwaiting" in failed.message
    [child_line] = [
        e["line"] for e in recording.events("command.output") if e["stream"] == "stdout"
    ]
    child = int(child_line.removeprefix("child="))
    deadline = time.monotonic() + 2
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(child)


def test_a_missing_program_is_a_permanent_failure(make_context: ContextFactory) -> None:
    failed = failure(make_context(ENVIRON), argv=["no-such-program-here", "--flag"])
    assert failed.exit_code == EXIT_PERMANENT
    assert "params.argv[0]: the program 'no-such-program-here' was not found on PATH" in (
        failed.message
    )


def test_a_file_that_is_not_executable_is_a_permanent_failure(
    make_context: ContextFactory, tmp_path: Path
) -> None:
    script = tmp_path / "job.sh"
    # Without any execute bit even root cannot run it.
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    failed = failure(make_context(ENVIRON), argv=[str(script)])
    assert failed.exit_code == EXIT_PERMANENT
    assert "is not executable" in failed.message


def test_working_dir_and_env_reach_the_program(
    make_context: ContextFactory, tmp_path: Path
) -> None:
    recording = make_context({**ENVIRON, "FROM_SECRET": "kept"})
    call(
        recording,
        argv=["sh", "-c", 'pwd; echo "$GREETING $FROM_SECRET"'],
        workingDir=str(tmp_path),
        env={"GREETING": "hello"},
    )
    lines = [event["line"] for event in recording.events("command.output")]
    assert lines == [str(tmp_path), "hello kept"]


def test_a_missing_working_dir_is_a_permanent_failure(make_context: ContextFactory) -> None:
    failed = failure(make_context(ENVIRON), argv=["true"], workingDir="/no/such/dir")
    assert failed.exit_code == EXIT_PERMANENT
    assert "params.workingDir: the directory '/no/such/dir' does not exist" in failed.message


def test_a_stop_request_ends_the_program_promptly(make_context: ContextFactory) -> None:
    recording = make_context(ENVIRON)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            call(recording, argv=["sleep", "30"])
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 5
    while not recording.events("command.started") and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    recording.context.stop.request("test")
    worker.join(5)
    assert not worker.is_alive()
    assert time.monotonic() - started < 1
    [error] = outcome
    assert isinstance(error, TaskFailure)
    assert "was stopped" in error.message


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, "params.argv is required"),
        ({"argv": []}, "params.argv: List should have at least 1 item"),
        ({"argv": [""]}, "params.argv: the first item must name a program"),
        ({"argv": ["x"], "timeoutSeconds": -1}, "params.timeoutSeconds: Input should be greater"),
        ({"argv": ["x"], "env": {"1BAD": "v"}}, "'1BAD' is not an environment variable name"),
        ({"argv": ["x"], "permanentExitCodes": [0]}, "exit codes of a failure are from 1 to 255"),
        ({"argv": "ls -l"}, 'params.argv: Input should be a valid list (got "ls -l")'),
    ],
)
def test_invalid_params_are_named_in_the_message(given: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidParams) as raised:
        params(**given)
    assert expected in raised.value.message
