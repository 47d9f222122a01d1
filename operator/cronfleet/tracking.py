"""Run tracking, retries, the Failed state, run-now, reset and missed runs.

``track`` is pure: from the Schedule, its Jobs and their pods and ``now`` it
computes the status fields it owns, the events, the Jobs to create and the
runs newly finished. Every decision is replayable: Jobs it creates have
deterministic names, and a run is counted once, when its history entry gets
a result (the Job is then annotated, so a trimmed history never counts it
again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cronfleet.clock import from_rfc3339, to_rfc3339
from cronfleet.config import OperatorConfig
from cronfleet.cronschedule import next_fire_time, parse, zone
from cronfleet.manifests import Manifest, run_job
from cronfleet.models import (
    MissedRun,
    OnExhausted,
    RunRecord,
    RunResult,
    RunTrigger,
    ScheduleSpec,
)
from cronfleet.naming import RECORDED_ANNOTATION, cronjob_name
from cronfleet.runs import (
    PERMANENT_FAILURE_EXIT_CODE,
    manual_job_name,
    origin_of,
    retry_delay,
    retry_job_name,
    run_record,
    scheduled_time,
    trigger_of,
)

RUN_NOW_ANNOTATION = "cronfleet.io/run-now"
RESET_ANNOTATION = "cronfleet.io/reset"
MISSED_RUNS_KEPT = 20
# Misses reported per reconcile at most: a long outage of an every-minute
# schedule is summarised, not turned into thousands of events.
MISSED_RUNS_PER_CHECK = 10
# The CronJob controller may start a run up to startingDeadlineSeconds late;
# a little more is allowed before calling it missed.
MISSED_RUN_GRACE = timedelta(seconds=5)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Tracking:
    updates: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    create_jobs: list[Manifest] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    finished: list[RunRecord] = field(default_factory=list)
    missed: list[MissedRun] = field(default_factory=list)
    requeue_at: datetime | None = None
    failed: bool = False

    def wake(self, at: datetime) -> None:
        self.requeue_at = min(self.requeue_at, at) if self.requeue_at else at


def _history(status: Mapping[str, Any]) -> list[RunRecord]:
    return [RunRecord.model_validate(item) for item in status.get("history") or []]


def _dump(records: Sequence[Any]) -> list[dict[str, Any]]:
    return [record.model_dump(by_alias=True, mode="json", exclude_none=True) for record in records]


def _newest_first(record: RunRecord) -> str:
    return record.start_time or record.scheduled_time or ""


def track(
    schedule: Mapping[str, Any],
    spec: ScheduleSpec,
    jobs: Sequence[Mapping[str, Any]],
    pods: Mapping[str, Sequence[Mapping[str, Any]]],
    config: OperatorConfig,
    now: datetime,
    check_missed: bool = True,
) -> Tracking:
    meta = schedule["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    status: Mapping[str, Any] = schedule.get("status") or {}
    out = Tracking()
    cronjob = cronjob_name(name)

    counts = {"succeeded": 0, "failed": 0, **(status.get("counts") or {})}
    retry_count = int(status.get("retryCount") or 0)
    consecutive = int(status.get("consecutiveFailures") or 0)
    next_retry: str | None = status.get("nextRetryTime")
    retry_of: str | None = status.get("retryOf")
    last_success: str | None = status.get("lastSuccessfulTime")
    last_failure: str | None = status.get("lastFailureTime")
    tokens = dict(status.get("lastHandledTokens") or {})
    failed = status.get("phase") == "Failed"

    # 1. Reset: a new reset token, or a new spec generation, clears the failure.
    def reset(why: str) -> None:
        nonlocal failed, retry_count, consecutive, next_retry, retry_of
        if failed or retry_count or consecutive or next_retry:
            out.events.append(Event("Normal", "Resumed", why))
        failed, retry_count, consecutive, next_retry, retry_of = False, 0, 0, None, None

    reset_token = annotations.get(RESET_ANNOTATION)
    if reset_token and reset_token != tokens.get("reset"):
        tokens["reset"] = reset_token
        reset(f"reset by {RESET_ANNOTATION}={reset_token}: failures cleared, runs resume")
    generation = meta.get("generation")
    if failed and status.get("observedGeneration") not in (None, generation):
        reset("the spec changed: failures cleared, runs resume")

    # 2. Runs: new ones enter the history; finished ones get their result once.
    by_job = {record.job: record for record in _history(status)}
    newly_finished: list[tuple[RunRecord, Mapping[str, Any]]] = []
    for job in sorted(jobs, key=lambda j: j["metadata"].get("creationTimestamp", "")):
        job_name = job["metadata"]["name"]
        previous = by_job.get(job_name)
        recorded = (job["metadata"].get("annotations") or {}).get(RECORDED_ANNOTATION) == "true"
        if recorded or (previous is not None and previous.result is not None):
            continue
        record = run_record(job, pods.get(job_name, ()))
        if previous is None and record.result is None and spec.history.keep > 0:
            out.events.append(
                Event(
                    "Normal",
                    "RunStarted",
                    f"Run {job_name} started ({record.trigger.value}, attempt {record.attempt})",
                )
            )
        by_job[job_name] = record
        if record.result is not None:
            newly_finished.append((record, job))
            out.recorded.append(job_name)

    # 3. Results, in the order runs finished.
    newly_finished.sort(key=lambda pair: pair[0].completion_time or "")
    policy = spec.retry
    for record, job in newly_finished:
        out.finished.append(record)
        took = f" in {record.duration_seconds:.0f}s" if record.duration_seconds is not None else ""
        detail = f": {record.message}" if record.message else ""
        if record.result is RunResult.SUCCEEDED:
            counts["succeeded"] += 1
            last_success = record.completion_time
            failed, retry_count, consecutive, next_retry, retry_of = False, 0, 0, None, None
            out.events.append(
                Event("Normal", "RunSucceeded", f"Run {record.job} succeeded{took}{detail}")
            )
            continue
        counts["failed"] += 1
        last_failure = record.completion_time
        consecutive += 1
        outcome = "timed out" if record.result is RunResult.TIMED_OUT else "failed"
        code = f" with exit code {record.exit_code}" if record.exit_code is not None else ""
        out.events.append(
            Event("Warning", "RunFailed", f"Run {record.job} {outcome}{code}{took}{detail}")
        )
        if record.exit_code == PERMANENT_FAILURE_EXIT_CODE:
            continue  # a permanent failure: retrying the same input cannot help
        if record.trigger is not RunTrigger.RETRY or retry_of is None:
            # A scheduled or manual run starts a fresh retry cycle.
            retry_count, retry_of = 0, origin_of(job)
        if retry_count < policy.max_retries:
            delay = retry_delay(policy.backoff, retry_count)
            retry_count += 1
            finished_at = from_rfc3339(record.completion_time) if record.completion_time else now
            next_retry = to_rfc3339(finished_at + delay)
            out.events.append(
                Event(
                    "Normal",
                    "RetryScheduled",
                    f"Retry {retry_count} of {policy.max_retries} for {retry_of} "
                    f"at {next_retry} (after {delay.total_seconds():.0f}s)",
                )
            )
        else:
            failed, next_retry = True, None
            suspended = policy.on_exhausted is OnExhausted.SUSPEND
            then = (
                "the CronJob is suspended until reset"
                if suspended
                else "the schedule keeps its cadence"
            )
            out.events.append(
                Event(
                    "Warning",
                    "RetriesExhausted",
                    f"Run {retry_of} failed and all {policy.max_retries} retries failed; {then} "
                    f"(annotate {RESET_ANNOTATION} with a new value to reset)",
                )
            )

    # 4. A retry that is due is created (again after a restart: same name).
    if next_retry and retry_of and not failed:
        due = from_rfc3339(next_retry)
        if now >= due:
            origin = by_job.get(retry_of)
            out.create_jobs.append(
                run_job(
                    namespace,
                    name,
                    uid,
                    spec,
                    config,
                    job_name=retry_job_name(cronjob, retry_of, retry_count),
                    trigger=RunTrigger.RETRY,
                    attempt=retry_count,
                    scheduled_time=origin.scheduled_time if origin else None,
                    origin=retry_of,
                )
            )
            next_retry = None
        else:
            out.wake(due)

    # 5. Run now: one manual run per distinct token.
    run_now = annotations.get(RUN_NOW_ANNOTATION)
    if run_now and run_now != tokens.get("runNow"):
        tokens["runNow"] = run_now
        out.create_jobs.append(
            run_job(
                namespace,
                name,
                uid,
                spec,
                config,
                job_name=manual_job_name(cronjob, run_now),
                trigger=RunTrigger.MANUAL,
                attempt=0,
                scheduled_time=to_rfc3339(now),
                origin=None,
            )
        )

    # 6. Missed runs: fire times past their starting deadline with no run.
    suspended_now = spec.suspend or (failed and policy.on_exhausted is OnExhausted.SUSPEND)
    checked_until: str | None
    if check_missed:
        checked_until, missed = _missed_runs(
            schedule, spec, list(by_job.values()), jobs, now, suspended_now, out
        )
    else:
        checked_until, missed = status.get("missedRunsCheckedUntil"), []
        out.wake(now + MISSED_RUN_GRACE)
    out.missed = missed

    history = sorted(by_job.values(), key=_newest_first, reverse=True)[: spec.history.keep]
    missed_runs = [MissedRun.model_validate(item) for item in status.get("missedRuns") or []]
    missed_runs = (list(reversed(missed)) + missed_runs)[:MISSED_RUNS_KEPT]
    out.failed = failed
    out.updates = {
        "history": _dump(history),
        "counts": counts,
        "retryCount": retry_count,
        "nextRetryTime": next_retry,
        "retryOf": retry_of,
        "consecutiveFailures": consecutive,
        "lastSuccessfulTime": last_success,
        "lastFailureTime": last_failure,
        "lastHandledTokens": tokens,
        "missedRuns": _dump(missed_runs),
        "missedRunsCheckedUntil": checked_until,
    }
    return out


def _missed_runs(
    schedule: Mapping[str, Any],
    spec: ScheduleSpec,
    history: Sequence[RunRecord],
    jobs: Sequence[Mapping[str, Any]],
    now: datetime,
    suspended: bool,
    out: Tracking,
) -> tuple[str, list[MissedRun]]:
    status: Mapping[str, Any] = schedule.get("status") or {}
    deadline = timedelta(seconds=spec.starting_deadline_seconds) + MISSED_RUN_GRACE
    horizon = now - deadline
    previous = status.get("missedRunsCheckedUntil")
    phase = status.get("phase")
    was_suspended = phase == "Paused" or (
        phase == "Failed" and spec.retry.on_exhausted is OnExhausted.SUSPEND
    )
    if previous is None or (was_suspended and not suspended):
        # Fire times before the operator first saw the schedule, or skipped
        # while it was paused or failed, are not misses.
        return to_rfc3339(now), []
    if suspended:
        return previous, []
    checked = from_rfc3339(previous)
    cron, time_zone = parse(spec.cron), zone(spec.time_zone)
    due_times = {
        record.scheduled_time
        for record in history
        if record.scheduled_time and record.trigger is RunTrigger.SCHEDULED
    }
    for job in jobs:
        due = scheduled_time(job)
        if due is not None and trigger_of(job) is RunTrigger.SCHEDULED:
            due_times.add(to_rfc3339(due))
    missed: list[MissedRun] = []
    moment = checked
    while True:
        fire = next_fire_time(cron, moment, time_zone)
        if fire is None:
            break
        if fire > horizon:
            out.wake(fire + deadline)
            break
        moment = fire
        if to_rfc3339(fire) in due_times:
            continue
        missed.append(
            MissedRun(scheduled_time=to_rfc3339(fire), reason=_miss_reason(spec, history, fire))
        )
        if len(missed) >= MISSED_RUNS_PER_CHECK:
            moment = horizon
            break
    for miss in missed:
        out.events.append(
            Event("Warning", "MissedRun", f"No run for {miss.scheduled_time}: {miss.reason}")
        )
    return to_rfc3339(max(moment, checked)), missed


def _miss_reason(spec: ScheduleSpec, history: Sequence[RunRecord], fire: datetime) -> str:
    for record in history:
        if not record.start_time:
            continue
        started = from_rfc3339(record.start_time)
        ended = from_rfc3339(record.completion_time) if record.completion_time else None
        overlapping = started <= fire and (ended is None or ended > fire)
        if overlapping and spec.concurrency_policy.value == "Forbid":
            return f"run {record.job} was still running and concurrencyPolicy is Forbid"
    return (
        f"no Job started within startingDeadlineSeconds ({spec.starting_deadline_seconds}s); "
        "the CronJob controller may have been unavailable"
    )
