"""Running one task under the runner contract.

The task runs on a worker thread while the main thread watches for SIGTERM
(and SIGINT). On a signal the main thread asks the task to stop, gives it a
short grace to clean up (end its child process, cancel its coroutine), then
reports the run as terminated whatever the task is still doing: a Job's
deadline must end the pod promptly, not when the task feels like it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import FrameType, TracebackType
from typing import Any, TextIO

from cronfleet_runner import __version__
from cronfleet_runner.contract import (
    ENV_PARAMS,
    ENV_STOP_GRACE_SECONDS,
    EXIT_RETRYABLE,
    EXIT_SUCCEEDED,
    RunMetadata,
    exit_code_for_signal,
    termination_message_path,
)
from cronfleet_runner.eventlog import EventLog
from cronfleet_runner.masking import Masker
from cronfleet_runner.params import parse_params_json
from cronfleet_runner.registry import RegisteredTask, Registry
from cronfleet_runner.summary import (
    Summary,
    bounded_data,
    clip,
    failed,
    succeeded,
    write_termination_message,
)
from cronfleet_runner.task import Outcome, RunContext, TaskFailure

# How long a task may take to clean up after SIGTERM, unless
# CRONFLEET_STOP_GRACE_SECONDS says otherwise. Kubernetes waits
# terminationGracePeriodSeconds (30 s by default) before SIGKILL; staying well
# under it leaves time to write the termination message.
STOP_GRACE_SECONDS = 5.0
MAX_STOP_GRACE_SECONDS = 3600.0
POLL_SECONDS = 0.05
WATCHED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
MAX_TRACEBACK_CHARS = 4000


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    summary: Summary
    # True when a stopped task did not finish within the grace: the process
    # must then exit without waiting for that thread.
    task_still_running: bool = False


class SignalWatch:
    """Records a termination signal instead of dying of it.

    The handler only stores the signal number: it runs between two bytecodes
    of the main thread, where taking a lock (logging, Event.set) could deadlock.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum

    def __enter__(self) -> SignalWatch:
        # Handlers can only be installed from the main thread; elsewhere (a
        # test calling execute() from a thread) signals keep their defaults.
        if threading.current_thread() is threading.main_thread():
            for signum in WATCHED_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


class TaskThread(threading.Thread):
    """Runs the task and keeps what it returned or raised."""

    def __init__(self, task: RegisteredTask, params: Any, context: RunContext) -> None:
        super().__init__(name=f"task-{task.name}", daemon=True)
        self.task = task
        self.params = params
        self.context = context
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.outcome = self.task.run(self.params, self.context)
        except BaseException as error:
            self.error = error
        finally:
            self.done.set()


def _result_of(thread: TaskThread, log: EventLog) -> RunResult:
    error = thread.error
    if error is None:
        outcome = thread.outcome
        if not isinstance(outcome, Outcome):
            message = (
                f"Task '{thread.task.name}' returned {type(outcome).__name__} instead of an "
                "Outcome; this is a bug in the task."
            )
            return RunResult(EXIT_RETRYABLE, failed(message))
        return RunResult(EXIT_SUCCEEDED, succeeded(outcome.message, outcome.data))
    if isinstance(error, TaskFailure):
        return RunResult(error.exit_code, failed(error.message, error.data))
    formatted = "".join(traceback.format_exception(error))
    log.error(
        "task.crashed",
        error=f"{type(error).__name__}: {error}",
        traceback=formatted[-MAX_TRACEBACK_CHARS:],
    )
    message = (
        f"Task '{thread.task.name}' failed unexpectedly with "
        f"{type(error).__name__}: {clip(str(error), 600)}"
    )
    return RunResult(EXIT_RETRYABLE, failed(message))


def _terminated(
    signum: int,
    task_name: str,
    elapsed: float,
    task_stopped: bool,
    started: bool,
    grace_seconds: float,
) -> RunResult:
    name = signal.Signals(signum).name
    if not started:
        what = f"before task '{task_name}' started"
    elif task_stopped:
        what = f"while running task '{task_name}'; the task was stopped"
    else:
        what = (
            f"while running task '{task_name}'; the task did not stop within "
            f"{grace_seconds:g}s and was abandoned"
        )
    message = (
        f"Terminated by {name} after {elapsed:.1f}s {what}. Kubernetes sends {name} when "
        "the Job's activeDeadlineSeconds (the Schedule's timeoutSeconds) passes or the pod "
        "is deleted."
        if signum == signal.SIGTERM
        else f"Interrupted by {name} after {elapsed:.1f}s {what}."
    )
    return RunResult(
        exit_code_for_signal(signum),
        failed(message, {"signal": name}),
        task_still_running=started and not task_stopped,
    )


def _run(
    metadata: RunMetadata,
    environ: Mapping[str, str],
    registry: Registry,
    log: EventLog,
    signals: SignalWatch,
    started_at: float,
    stop_grace_seconds: float,
) -> RunResult:
    try:
        task = registry.get(metadata.task)
        params = task.validate(parse_params_json(environ.get(ENV_PARAMS)))
    except TaskFailure as failure:
        log.error("run.rejected", reason=type(failure).__name__, message=failure.message)
        return RunResult(failure.exit_code, failed(failure.message, failure.data))

    if signals.received is not None:
        return _terminated(
            signals.received,
            task.name,
            time.monotonic() - started_at,
            task_stopped=True,
            started=False,
            grace_seconds=stop_grace_seconds,
        )

    context = RunContext(metadata=metadata, log=log, environ=dict(environ))
    log.info(
        "task.started",
        origin=task.origin,
        # Names only: values may carry what a user should have put in a Secret.
        params=sorted(params.model_dump(by_alias=True, exclude_unset=True)),
    )
    thread = TaskThread(task, params, context)
    thread.start()
    while not thread.done.wait(POLL_SECONDS):
        signum = signals.received
        if signum is None:
            continue
        log.warning(
            "run.stopping",
            signal=signal.Signals(signum).name,
            graceSeconds=stop_grace_seconds,
        )
        for error in context.stop.request(f"received {signal.Signals(signum).name}"):
            log.warning("run.stop_callback_failed", error=repr(error))
        stopped = thread.done.wait(stop_grace_seconds)
        if not stopped:
            log.warning("task.abandoned", graceSeconds=stop_grace_seconds)
        elapsed = time.monotonic() - started_at
        return _terminated(
            signum,
            task.name,
            elapsed,
            task_stopped=stopped,
            started=True,
            grace_seconds=stop_grace_seconds,
        )
    return _result_of(thread, log)


def mask_summary(summary: Summary, masker: Masker) -> Summary:
    """The summary with every secret value in its message and data replaced by ***."""
    if not masker:
        return summary
    data = None if summary.data is None else masker.value(dict(summary.data))
    return Summary(summary.result, masker.text(summary.message), data)


def stop_grace_from(environ: Mapping[str, str]) -> tuple[float, str | None]:
    """The stop grace in seconds, and a warning when the variable was unusable."""
    text = environ.get(ENV_STOP_GRACE_SECONDS, "").strip()
    if not text:
        return STOP_GRACE_SECONDS, None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_STOP_GRACE_SECONDS:
        return STOP_GRACE_SECONDS, (
            f"{ENV_STOP_GRACE_SECONDS} should be a number of seconds from 0 to "
            f"{MAX_STOP_GRACE_SECONDS:g}, not {text!r}; using {STOP_GRACE_SECONDS:g}"
        )
    return seconds, None


def execute(
    environ: Mapping[str, str],
    registry: Registry,
    stdout: TextIO,
    *,
    stop_grace_seconds: float | None = None,
) -> RunResult:
    """Run the task the environment names; log, write the termination message, return."""
    metadata = RunMetadata.from_environ(environ)
    masker = Masker.from_environ(environ)
    log = EventLog(stdout, metadata, masker=masker)
    started_at = time.monotonic()
    with SignalWatch() as signals:
        log.info("run.started", runnerVersion=__version__, pid=os.getpid())
        if metadata.attempt_raw is not None:
            log.warning(
                "run.environment_invalid",
                message=f"CRONFLEET_ATTEMPT should be a whole number, not {metadata.attempt_raw!r}",
            )
        if stop_grace_seconds is None:
            stop_grace_seconds, grace_problem = stop_grace_from(environ)
            if grace_problem is not None:
                log.warning("run.environment_invalid", message=grace_problem)
        result = _run(metadata, environ, registry, log, signals, started_at, stop_grace_seconds)
        # Masked whole, before the summary's bounds clip anything.
        result = replace(result, summary=mask_summary(result.summary, masker))
        path = termination_message_path(environ)
        problem = write_termination_message(path, result.summary)
        if problem is not None:
            log.warning("termination_message.unwritten", path=path, error=str(problem))
        log.emit(
            "run.finished",
            "info" if result.summary.succeeded else "error",
            result=result.summary.result,
            exitCode=result.exit_code,
            durationSeconds=round(time.monotonic() - started_at, 3),
            message=result.summary.message,
            data=bounded_data(result.summary.data),
        )
    return result
