"""``command``: run a program with arguments, a timeout and extra environment.

The program's output becomes JSON log lines (``command.output``, one per
line, with the stream's name), so ``kubectl logs`` stays machine-readable;
the end of its stderr goes into the failure message, which is usually what
a person needs to see first.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from typing import IO, Literal

from pydantic import Field, field_validator

from cronfleet_runner.eventlog import EventLog
from cronfleet_runner.summary import clip
from cronfleet_runner.task import (
    Outcome,
    PermanentFailure,
    RetryableFailure,
    RunContext,
    TaskParams,
    task,
)
from cronfleet_runner.tasks.names import EnvVarName

# After SIGTERM the command gets this long to exit before SIGKILL; it stays
# under the runner's own stop grace so the runner can still report.
KILL_GRACE_SECONDS = 3.0
POLL_SECONDS = 0.05
# Output is read in bounded pieces: a program writing one endless line must
# not exhaust the runner's memory.
MAX_LINE_BYTES = 16 * 1024
TAIL_LINES = 20
MESSAGE_TAIL_CHARS = 700
PUMP_JOIN_SECONDS = 1.0

Stream = Literal["stdout", "stderr"]


class CommandParams(TaskParams):
    argv: list[str] = Field(
        min_length=1,
        description='The program and its arguments, e.g. ["pg_dump", "--schema-only", '
        '"app"]. No shell is involved; use ["sh", "-c", "..."] for one.',
    )
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=7 * 24 * 3600,
        description="Stop the program (SIGTERM, then SIGKILL 3 s later) after this many "
        "seconds and fail the run (exit 1). Unset: no limit but the Schedule's timeoutSeconds.",
    )
    working_dir: str | None = Field(
        default=None,
        min_length=1,
        description="The directory to run in; the runner's working directory (/tmp in the "
        "image) by default.",
    )
    env: dict[EnvVarName, str] = Field(
        default_factory=dict,
        description="Extra environment variables for the program, on top of the runner's own "
        "(which include the Schedule's env and envFrom).",
    )
    permanent_exit_codes: list[int] = Field(
        default_factory=list,
        description="Exit codes of the program that mean retrying cannot help: they end the "
        "run with exit 2 instead of 1.",
    )

    @field_validator("argv")
    @classmethod
    def _program_named(cls, argv: list[str]) -> list[str]:
        if not argv[0].strip():
            raise ValueError("the first item must name a program, not be empty")
        if any("\x00" in item for item in argv):
            raise ValueError("arguments cannot contain NUL characters")
        return argv

    @field_validator("permanent_exit_codes")
    @classmethod
    def _valid_exit_codes(cls, codes: list[int]) -> list[int]:
        wrong = [code for code in codes if not 1 <= code <= 255]
        if wrong:
            raise ValueError(f"exit codes of a failure are from 1 to 255, not {wrong}")
        return codes


class OutputPump(threading.Thread):
    """Copies one of the program's streams into the log, keeping the last lines."""

    def __init__(self, pipe: IO[bytes], stream: Stream, log: EventLog) -> None:
        super().__init__(name=f"command-{stream}", daemon=True)
        self.pipe = pipe
        self.stream = stream
        self.log = log
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def run(self) -> None:
        with self.pipe:
            while True:
                raw = self.pipe.readline(MAX_LINE_BYTES)
                if not raw:
                    return
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self.log.emit(
                    "command.output",
                    "warning" if self.stream == "stderr" else "info",
                    stream=self.stream,
                    line=line,
                )
                self.tail.append(line)


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    # The program runs in its own process group, so its children go with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _end(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM the program's group, SIGKILL it after the grace; the exit status."""
    _signal_group(process, signal.SIGTERM)
    try:
        return process.wait(timeout=KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        return process.wait()


def _tail_text(stderr: OutputPump, stdout: OutputPump) -> str:
    for pump in (stderr, stdout):
        lines = [line for line in pump.tail if line.strip()]
        if lines:
            text = "\n".join(lines)
            if len(text) > MESSAGE_TAIL_CHARS:
                text = "…" + text[-(MESSAGE_TAIL_CHARS - 1) :]
            return f"; {pump.stream} ends with:\n{text}"
    return "; it wrote nothing to stderr or stdout"


def _start(params: CommandParams, context: RunContext) -> subprocess.Popen[bytes]:
    program = params.argv[0]
    if params.working_dir is not None and not os.path.isdir(params.working_dir):
        raise PermanentFailure(
            f"params.workingDir: the directory {params.working_dir!r} does not exist in the "
            "runner's container; use an existing directory such as /tmp."
        )
    env = {**context.environ, **params.env}
    try:
        return subprocess.Popen(
            params.argv,
            cwd=params.working_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as error:
        where = "" if "/" in program else f" on PATH ({env.get('PATH', '')})"
        raise PermanentFailure(
            f"params.argv[0]: the program {program!r} was not found{where}; install it in the "
            "runner image or give its full path."
        ) from error
    except PermissionError as error:
        raise PermanentFailure(
            f"params.argv[0]: the program {program!r} is not executable by the runner "
            f"(user {os.getuid()}): {error.strerror}."
        ) from error
    except OSError as error:
        raise PermanentFailure(
            f"params.argv[0]: the program {program!r} could not be started: {error}."
        ) from error


@task("command", params=CommandParams)
def command_task(params: CommandParams, context: RunContext) -> Outcome:
    """Run a program with arguments, an optional timeout, working directory and environment."""
    shown = clip(shlex.join(params.argv), 200)
    started = time.monotonic()
    process = _start(params, context)
    context.log.info("command.started", argv=params.argv, pid=process.pid)
    assert process.stdout is not None and process.stderr is not None
    stdout = OutputPump(process.stdout, "stdout", context.log)
    stderr = OutputPump(process.stderr, "stderr", context.log)
    stdout.start()
    stderr.start()

    unregister = context.stop.on_request(lambda: _signal_group(process, signal.SIGTERM))
    deadline = started + params.timeout_seconds if params.timeout_seconds else None
    timed_out = False
    try:
        while True:
            try:
                code = process.wait(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            if context.stop.requested or (deadline is not None and time.monotonic() >= deadline):
                timed_out = not context.stop.requested
                code = _end(process)
                break
    finally:
        unregister()
    # Like a container's PID namespace, the program's group ends with it:
    # a cron run leaves no stray background processes behind.
    _signal_group(process, signal.SIGKILL)
    stdout.join(PUMP_JOIN_SECONDS)
    stderr.join(PUMP_JOIN_SECONDS)
    elapsed = time.monotonic() - started
    context.log.info(
        "command.exited", exitCode=code, durationSeconds=round(elapsed, 3), timedOut=timed_out
    )

    data = {"exitCode": code}
    if timed_out:
        raise RetryableFailure(
            f"Command {shown} did not finish within params.timeoutSeconds="
            f"{params.timeout_seconds:g}s and was stopped{_tail_text(stderr, stdout)}",
            data,
        )
    if context.stop.requested:
        raise RetryableFailure(f"Command {shown} was stopped after {elapsed:.2f}s.", data)
    if code == 0:
        return Outcome(f"Command {shown} exited 0 after {elapsed:.2f}s.", data)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        raise RetryableFailure(
            f"Command {shown} was killed by {name} after {elapsed:.2f}s"
            f"{_tail_text(stderr, stdout)}",
            data,
        )
    failure = PermanentFailure if code in params.permanent_exit_codes else RetryableFailure
    raise failure(
        f"Command {shown} exited with code {code} after {elapsed:.2f}s{_tail_text(stderr, stdout)}",
        data,
    )
