"""``sleep``: wait, then succeed or fail with a chosen exit code — for tests and drills.

It lets the operator's tests and a team's failure drills produce every kind
of run on demand: a slow run (timeouts, SIGTERM), a retryable failure
(``exitCode: 1``), a permanent one (``exitCode: 2``), or any other code.
"""

from __future__ import annotations

from pydantic import Field

from cronfleet_runner.contract import EXIT_SUCCEEDED
from cronfleet_runner.task import Outcome, RunContext, TaskFailure, TaskParams, task

MAX_SLEEP_SECONDS = 7 * 24 * 3600


class SleepParams(TaskParams):
    seconds: float = Field(
        default=0,
        ge=0,
        le=MAX_SLEEP_SECONDS,
        description="How long to wait, in seconds (fractions allowed); SIGTERM ends the wait.",
    )
    exit_code: int = Field(
        default=EXIT_SUCCEEDED,
        ge=0,
        le=255,
        description="The exit code to end with: 0 succeeds, 1 is a retryable failure, "
        "2 a permanent one; any other code fails with that code.",
    )
    message: str | None = Field(
        default=None,
        max_length=2048,
        description="The message for the termination message; a description of the run by default.",
    )


@task("sleep", params=SleepParams)
def sleep_task(params: SleepParams, context: RunContext) -> Outcome:
    """Wait some seconds, then exit with the given code: for tests and failure drills."""
    context.log.info("sleep.waiting", seconds=params.seconds)
    # Waiting on the stop request, not time.sleep, so SIGTERM ends the run at once.
    if context.stop.wait(params.seconds):
        return Outcome("Stopped before the wait was over.")
    if params.exit_code == EXIT_SUCCEEDED:
        return Outcome(params.message or f"Slept {params.seconds:g}s.")
    raise TaskFailure(
        params.message
        or f"Slept {params.seconds:g}s, then failed with exit code {params.exit_code} "
        "as params.exitCode asks.",
        exit_code=params.exit_code,
    )
