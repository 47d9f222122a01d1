"""How far a run-now token got, read purely from the Schedule's status.

``status.manualRuns`` says what the token led to (the Job it started, or why
it waits or started none); ``status.history`` then says how that Job's run
ended, and how its retries (deterministic names, ``status.retryOf``) ended.
``kubectl cronfleet run --wait`` follows these until the run cycle ends: a
failed run that will be retried is not the end, so a script sees the outcome
the Schedule's retry policy gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cronfleet.models import ManualRunState, RunResult
from cronfleet.naming import cronjob_name
from cronfleet.runs import retry_job_name

# Retries a Schedule may make (spec.retry.maxRetries is at most 100).
MAX_RETRIES = 100


class Stage(StrEnum):
    # The operator has not acted on the token yet.
    REQUESTED = "Requested"
    DEFERRED = "Deferred"
    REFUSED = "Refused"
    RUNNING = "Running"
    # The run failed and a retry is due or going.
    RETRYING = "Retrying"
    FINISHED = "Finished"


# Exit codes of `run --wait`: the run's outcome, usable in scripts and CI.
EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_NOT_RUN = 2


@dataclass(frozen=True)
class Progress:
    stage: Stage
    job: str | None = None
    message: str = ""
    run: Mapping[str, Any] | None = None

    @property
    def exit_code(self) -> int | None:
        """How `run --wait` ends at this stage; None while it should keep waiting."""
        if self.stage is Stage.REFUSED:
            return EXIT_NOT_RUN
        if self.stage is Stage.FINISHED and self.run is not None:
            succeeded = self.run.get("result") == RunResult.SUCCEEDED.value
            return EXIT_SUCCEEDED if succeeded else EXIT_FAILED
        return None


def progress(schedule: Mapping[str, Any], token: str) -> Progress:
    status = schedule.get("status") or {}
    entry = next(
        (item for item in status.get("manualRuns") or [] if item.get("token") == token), None
    )
    if entry is None:
        return Progress(Stage.REQUESTED)
    state, message = entry.get("state"), str(entry.get("message") or "")
    if state == ManualRunState.REFUSED.value:
        return Progress(Stage.REFUSED, message=message)
    if state == ManualRunState.DEFERRED.value:
        return Progress(Stage.DEFERRED, message=message)
    job = str(entry.get("job") or "")
    by_job = {str(item.get("job")): item for item in status.get("history") or []}
    run = by_job.get(job)
    if run is None or not run.get("result"):
        return Progress(Stage.RUNNING, job=job)
    cronjob = cronjob_name(str((schedule.get("metadata") or {}).get("name") or ""))
    latest = run
    for attempt in range(1, MAX_RETRIES + 1):
        retry = by_job.get(retry_job_name(cronjob, job, attempt))
        if retry is None:
            break
        latest = retry
    if not latest.get("result"):
        return Progress(Stage.RETRYING, job=str(latest.get("job")))
    if latest.get("result") != RunResult.SUCCEEDED.value and status.get("retryOf") == job:
        attempts = int(status.get("retryCount") or 0)
        if status.get("nextRetryTime") or int(latest.get("attempt") or 0) < attempts:
            # A retry is booked, or created and not in the history yet.
            return Progress(Stage.RETRYING, job=str(latest.get("job")))
    message = str(latest.get("message") or "")
    return Progress(Stage.FINISHED, job=str(latest.get("job")), message=message, run=latest)


__all__ = ["EXIT_FAILED", "EXIT_NOT_RUN", "EXIT_SUCCEEDED", "Progress", "Stage", "progress"]
