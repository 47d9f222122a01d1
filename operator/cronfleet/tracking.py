"""Run tracking: history, retries, the Failed state, run-now, reset and missed runs.

``track`` is pure: from the Schedule, its Jobs and their pods and ``now`` it
computes the status fields it owns, the events, the Jobs to create or delete
and the runs newly finished. It reads as small steps over one typed
``RunState``: reset, record runs, close runs that cannot start or whose Job
went away, apply the retry policy, start due retries and manual runs within
``concurrencyPolicy``, judge missed fire times.

Every decision is replayable: Jobs it creates have deterministic names, and a
run is counted once: its Job name enters ``status.recordedJobs``, whatever
``history.keep`` is, and a Job still there when its name leaves that ledger is
annotated first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cronfleet.cadence import Cadence, CadenceKind, spec_cadence
from cronfleet.chains import (
    CYCLES_KEPT,
    UpstreamView,
    cycle_result,
    follow_upstreams,
    valid_cycles,
)
from cronfleet.clock import from_rfc3339, to_rfc3339
from cronfleet.config import OperatorConfig
from cronfleet.cronschedule import CronError
from cronfleet.manifests import Manifest, UpstreamFacts, run_job
from cronfleet.models import (
    CatchUpPolicy,
    ConcurrencyPolicy,
    CycleRecord,
    ManualRun,
    ManualRunState,
    MissCause,
    MissedRun,
    OnExhausted,
    QueuedRun,
    RunRecord,
    RunResult,
    RunTrigger,
    ScheduleSpec,
    UpstreamStatus,
)
from cronfleet.naming import RECORDED_ANNOTATION, cronjob_name
from cronfleet.pausing import Suspension, suspension
from cronfleet.runs import (
    NO_POD_GRACE,
    NO_POD_SILENT_GRACE,
    PERMANENT_FAILURE_EXIT_CODE,
    after_job_name,
    backfill_job_name,
    blocked_by,
    catch_up_job_name,
    job_result,
    manual_job_name,
    origin_of,
    retry_delay,
    retry_job_name,
    run_record,
    runner_data,
    scheduled_time,
    trigger_of,
)
from cronfleet.statusbudget import bounded_tokens

RUN_NOW_ANNOTATION = "cronfleet.io/run-now"
BACKFILL_ANNOTATION = "cronfleet.io/backfill"
# Runs one backfill request may queue: a year of a daily Schedule is 365.
MAX_BACKFILL_RUNS = 400
RESET_ANNOTATION = "cronfleet.io/reset"
MISSED_RUNS_KEPT = 20
# Misses reported per reconcile at most: a long outage of an every-minute
# schedule is summarised, not turned into thousands of events.
MISSED_RUNS_PER_CHECK = 10
# The CronJob controller may start a run up to startingDeadlineSeconds late;
# a little more is allowed before calling it missed.
MISSED_RUN_GRACE = timedelta(seconds=5)
# Manual runs of one Schedule running at once under Allow; more wait.
MAX_ACTIVE_MANUAL_RUNS = 3
# Jobs remembered as counted: more than the Jobs one Schedule can have at once.
RECORDED_JOBS_KEPT = 200
# Run-now tokens whose outcome status.manualRuns shows.
MANUAL_RUNS_KEPT = 10


class Reason(StrEnum):
    """Event reasons: stable, documented, for alerts and `kubectl get events`."""

    RUN_STARTED = "RunStarted"
    RUN_SUCCEEDED = "RunSucceeded"
    RUN_FAILED = "RunFailed"
    RUN_BLOCKED = "RunBlocked"
    RUN_CANCELLED = "RunCancelled"
    RETRY_SCHEDULED = "RetryScheduled"
    RETRY_DEFERRED = "RetryDeferred"
    RETRY_HELD = "RetryHeld"
    RETRIES_DROPPED = "RetriesDropped"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    RUN_NOW_DEFERRED = "RunNowDeferred"
    RUN_NOW_REFUSED = "RunNowRefused"
    MISSED_RUN = "MissedRun"
    CATCH_UP_QUEUED = "CatchUpQueued"
    BACKFILL_QUEUED = "BackfillQueued"
    BACKFILL_REFUSED = "BackfillRefused"
    RESUMED = "Resumed"
    RUN_OUTSIDE_WINDOW = "RunOutsideWindow"


class EndReason(StrEnum):
    """``history[].reason`` of runs the operator itself closes."""

    BLOCKED = "Blocked"
    REPLACED = "Replaced"
    DELETED = "Deleted"


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Blocked:
    job: str
    reason: str
    message: str


@dataclass
class Tracking:
    updates: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    create_jobs: list[Manifest] = field(default_factory=list)
    delete_jobs: list[str] = field(default_factory=list)
    # Jobs to mark recorded before the status write: their names leave the ledger.
    recorded: list[str] = field(default_factory=list)
    finished: list[RunRecord] = field(default_factory=list)
    missed: list[MissedRun] = field(default_factory=list)
    blocked: Blocked | None = None
    # Under Forbid, the CronJob is held suspended while a retry or manual run
    # goes: its controller does not see the operator's Jobs.
    hold_cronjob: bool = False
    requeue_at: datetime | None = None
    failed: bool = False

    def wake(self, at: datetime) -> None:
        self.requeue_at = min(self.requeue_at, at) if self.requeue_at else at

    def event(self, kind: str, reason: Reason, message: str) -> None:
        self.events.append(Event(kind, reason.value, message))


@dataclass(frozen=True)
class Observations:
    """What the controller saw besides the Schedule and its Jobs."""

    pods: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    # Whether the caches hold every Job: only then can a Job's absence mean it
    # is gone, and a fire time without a Job be judged.
    warm: bool = True
    # The CronJob's status.lastScheduleTime: the latest fire time its
    # controller started a Job for, which no history limit trims.
    last_schedule_time: datetime | None = None
    # What the Jobs' FailedCreate events say, by Job name.
    job_messages: Mapping[str, str] = field(default_factory=dict)
    # The spec is invalid: runs are still recorded, no new Job is started.
    record_only: bool = False
    # When the Schedule fires; None while its spec is invalid.
    cadence: Cadence | None = None
    # The Schedule's creation: fire times before it never run.
    created: datetime | None = None
    # spec.after's upstreams by name: None for one that does not exist; one
    # not listed is not judged yet (the caches are still filling).
    upstreams: Mapping[str, UpstreamView | None] = field(default_factory=dict)
    # Whether other Schedules run after this one: only then is the runner's
    # data of each ended cycle kept for them.
    has_downstreams: bool = False


@dataclass
class RunState:
    """The status fields run tracking owns, typed."""

    history: dict[str, RunRecord]
    counts: dict[str, int]
    recorded_jobs: list[str]
    retry_count: int
    next_retry: str | None
    retry_of: str | None
    consecutive: int
    last_success: str | None
    last_failure: str | None
    tokens: dict[str, str]
    failed: bool
    missed_runs: list[MissedRun]
    checked_until: str | None
    # Scheduled runs started (what maxRuns counts), and for cadences the
    # operator runs itself, the last fire time it handled.
    scheduled_runs: int
    last_fire: str | None
    # Catch-up, backfill and after runs waiting for their turn.
    queued: list[QueuedRun]
    # Ended run cycles, newest first, and the upstreams followed (spec.after).
    cycles: list[CycleRecord]
    upstreams: dict[str, UpstreamStatus]
    # The runner's data of runs that finished in this look, by Job.
    data: dict[str, str] = field(default_factory=dict)
    # spec.suspend or the pause annotation: no new runs, retries held.
    held: Suspension | None = None
    # What the latest run-now tokens led to, newest first.
    manual_runs: list[ManualRun] = field(default_factory=list)
    # Names pushed out of recorded_jobs in this look (it keeps RECORDED_JOBS_KEPT).
    evicted: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, status: Mapping[str, Any]) -> RunState:
        counts = {"succeeded": 0, "failed": 0, "cancelled": 0, "missed": 0}
        counts.update({k: int(v) for k, v in (status.get("counts") or {}).items()})
        return cls(
            history={record.job: record for record in _valid_records(status.get("history"))},
            counts=counts,
            recorded_jobs=[str(name) for name in status.get("recordedJobs") or []],
            retry_count=int(status.get("retryCount") or 0),
            next_retry=status.get("nextRetryTime"),
            retry_of=status.get("retryOf"),
            consecutive=int(status.get("consecutiveFailures") or 0),
            last_success=status.get("lastSuccessfulTime"),
            last_failure=status.get("lastFailureTime"),
            tokens=dict(status.get("lastHandledTokens") or {}),
            failed=status.get("phase") == "Failed",
            missed_runs=[MissedRun.model_validate(item) for item in status.get("missedRuns") or []],
            checked_until=status.get("missedRunsCheckedUntil"),
            scheduled_runs=int(status.get("scheduledRuns") or 0),
            last_fire=status.get("lastRunTime"),
            queued=_valid_queue(status.get("queuedRuns")),
            cycles=valid_cycles(status.get("cycles")),
            upstreams={u.schedule: u for u in _valid_upstreams(status.get("upstreams"))},
            manual_runs=_valid_manual_runs(status.get("manualRuns")),
        )

    def clear_retries(self) -> None:
        self.retry_count, self.next_retry, self.retry_of = 0, None, None

    def record(self, job: str) -> None:
        if job not in self.recorded_jobs:
            self.recorded_jobs.insert(0, job)
            self.evicted += self.recorded_jobs[RECORDED_JOBS_KEPT:]
            del self.recorded_jobs[RECORDED_JOBS_KEPT:]

    def active(self) -> list[RunRecord]:
        return [record for record in self.history.values() if record.result is None]

    def note_manual_run(
        self,
        token: str,
        outcome: ManualRunState,
        now: datetime,
        job: str | None = None,
        why: str = "",
    ) -> None:
        """What a run-now token led to; a deferred token's entry is updated when it starts."""
        entry = ManualRun(token=token, state=outcome, job=job, message=why, time=to_rfc3339(now))
        others = [run for run in self.manual_runs if run.token != token]
        self.manual_runs = [entry, *others][:MANUAL_RUNS_KEPT]


def _valid_manual_runs(items: Any) -> list[ManualRun]:
    runs = []
    for item in items or []:
        with contextlib.suppress(ValueError):
            runs.append(ManualRun.model_validate(item))
    return runs


def _valid_queue(items: Any) -> list[QueuedRun]:
    queue = []
    for item in items if isinstance(items, list) else []:
        with contextlib.suppress(ValueError):
            queue.append(QueuedRun.model_validate(item))
    return queue


def _valid_upstreams(items: Any) -> list[UpstreamStatus]:
    upstreams = []
    for item in items if isinstance(items, list) else []:
        with contextlib.suppress(ValueError):
            upstreams.append(UpstreamStatus.model_validate(item))
    return upstreams


def _valid_records(items: Any) -> list[RunRecord]:
    """History entries that parse; one broken entry must not stop the Schedule's tracking."""
    records = []
    for item in items if isinstance(items, list) else []:
        try:
            records.append(RunRecord.model_validate(item))
        except ValueError:
            continue
    return records


def _dump(records: Sequence[Any]) -> list[dict[str, Any]]:
    return [record.model_dump(by_alias=True, mode="json", exclude_none=True) for record in records]


def _newest_first(record: RunRecord) -> str:
    return record.start_time or record.scheduled_time or ""


def _deleting(job: Mapping[str, Any]) -> bool:
    return bool(job["metadata"].get("deletionTimestamp"))


def track(
    schedule: Mapping[str, Any],
    spec: ScheduleSpec,
    jobs: Sequence[Mapping[str, Any]],
    pods: Mapping[str, Sequence[Mapping[str, Any]]],
    config: OperatorConfig,
    now: datetime,
    check_missed: bool = True,
    seen: Observations | None = None,
) -> Tracking:
    seen = seen or Observations(pods=pods, warm=check_missed)
    if seen.cadence is None and not seen.record_only:
        created = schedule["metadata"].get("creationTimestamp")
        with contextlib.suppress(CronError, ValueError):
            seen = replace(
                seen,
                cadence=spec_cadence(spec, from_rfc3339(created) if created else None),
                created=seen.created or (from_rfc3339(created) if created else None),
            )
    meta = schedule["metadata"]
    # Tokens are copied into status and events: a long one is kept bounded.
    annotations: Mapping[str, str] = bounded_tokens(
        meta.get("annotations") or {}, (RUN_NOW_ANNOTATION, RESET_ANNOTATION, BACKFILL_ANNOTATION)
    )
    status: Mapping[str, Any] = schedule.get("status") or {}
    state = RunState.read(status)
    state.held = suspension(spec.suspend, annotations)
    out = Tracking()
    by_name = {job["metadata"]["name"]: job for job in jobs}

    generation_changed = status.get("observedGeneration") not in (None, meta.get("generation"))
    _reset(state, annotations, generation_changed, now, out)
    newly_finished = _record_runs(state, spec, jobs, seen, now, out)
    newly_finished += _close_gone_runs(state, spec, by_name, seen, now, out)
    _apply_retry_policy(state, spec, newly_finished, now, out)
    if not seen.record_only:
        _start_due_retry(state, schedule, spec, config, by_name, now, out)
        _run_now(state, schedule, spec, config, annotations, by_name, now, out)
        _start_due_fire_time(state, schedule, spec, config, by_name, seen, now, out)
        _backfill(state, spec, annotations, seen, out)
    elif annotations.get(RUN_NOW_ANNOTATION) not in (None, state.tokens.get("runNow")):
        token = annotations[RUN_NOW_ANNOTATION]
        state.tokens["runNow"] = token
        why = "the spec is invalid (see the status message); fix it, then annotate with a new value"
        state.note_manual_run(token, ManualRunState.REFUSED, now, why=why)
        out.event(
            "Warning", Reason.RUN_NOW_REFUSED, f"{RUN_NOW_ANNOTATION}={token} is refused: {why}"
        )
    if seen.cadence is not None and not seen.cadence.native:
        _trim_scheduled_jobs(state, spec, jobs, out)
    if not seen.record_only:
        _follow_upstreams(state, status, spec, seen, out)
    # Catch-up runs are queued by the missed-run check; they start on the next look.
    if not seen.record_only:
        _start_queued(state, schedule, spec, config, by_name, out)
    out.hold_cronjob = spec.concurrency_policy is ConcurrencyPolicy.FORBID and any(
        record.trigger is not RunTrigger.SCHEDULED for record in state.active()
    )

    # No run is due once maxRuns is reached: later fire times are not misses.
    suspended = (
        state.held is not None
        or (state.failed and spec.retry.on_exhausted is OnExhausted.SUSPEND)
        or runs_left(spec, state.scheduled_runs) == 0
    )
    if seen.warm and not seen.record_only:
        _missed_runs(state, status, spec, jobs, seen, now, suspended, generation_changed, out)
    elif state.checked_until is None or generation_changed:
        # Fire times before the operator first judged, or of an earlier spec, are not misses.
        state.checked_until = to_rfc3339(now)
    if not seen.warm:
        out.wake(now + MISSED_RUN_GRACE)

    active = [r for r in state.history.values() if r.result is None]
    finished = sorted(
        (r for r in state.history.values() if r.result is not None),
        key=_newest_first,
        reverse=True,
    )[: spec.history.keep]
    # Runs still going are always listed: they are what a user looks for, and
    # what tells a run whose Job disappeared.
    history = sorted(active + finished, key=_newest_first, reverse=True)
    # A Job whose name leaves the ledger and is still there is marked first (the
    # controller writes marks before the status): it is never counted again. Jobs
    # usually go long before: the CronJob's history limits and the operator's own
    # trimming keep a few per Schedule, the ledger 200. One mark per run, written
    # as it finished, used to cost a request on every run.
    out.recorded = [
        name
        for name in dict.fromkeys(state.evicted)
        if name in by_name
        and (by_name[name]["metadata"].get("annotations") or {}).get(RECORDED_ANNOTATION) != "true"
    ]
    out.failed = state.failed
    out.updates = {
        "history": _dump(history),
        "counts": state.counts,
        "recordedJobs": state.recorded_jobs,
        "retryCount": state.retry_count,
        "nextRetryTime": state.next_retry,
        "retryOf": state.retry_of,
        "consecutiveFailures": state.consecutive,
        "lastSuccessfulTime": state.last_success,
        "lastFailureTime": state.last_failure,
        "lastHandledTokens": state.tokens,
        "missedRuns": _dump(state.missed_runs[:MISSED_RUNS_KEPT]),
        "missedRunsCheckedUntil": state.checked_until,
        "scheduledRuns": state.scheduled_runs,
        "queuedRuns": _dump(state.queued),
        "cycles": _dump(state.cycles),
        "upstreams": _dump(list(state.upstreams.values())),
        "manualRuns": _dump(state.manual_runs),
    }
    if seen.cadence is not None and not seen.cadence.native:
        # The operator runs this cadence itself: the last fire time it handled.
        out.updates["lastRunTime"] = state.last_fire
    return out


def runs_left(spec: ScheduleSpec, scheduled_runs: int) -> int | None:
    return None if spec.max_runs is None else max(0, spec.max_runs - scheduled_runs)


# -- 1. reset ------------------------------------------------------------------------


def _reset(
    state: RunState,
    annotations: Mapping[str, str],
    generation_changed: bool,
    now: datetime,
    out: Tracking,
) -> None:
    """A new reset token, or a new spec generation, clears the failure and the retry cycle."""

    def reset(why: str) -> None:
        if state.next_retry and state.retry_of:
            out.event(
                "Normal",
                Reason.RETRIES_DROPPED,
                f"Retry {state.retry_count} of {state.retry_of} (due {state.next_retry}) "
                f"is dropped: {why}",
            )
        elif state.failed or state.retry_count or state.consecutive:
            out.event("Normal", Reason.RESUMED, f"{why}: failures cleared, runs resume")
        state.failed, state.consecutive = False, 0
        state.clear_retries()
        for key in ("retryDeferred", "retryHeld"):
            state.tokens.pop(key, None)

    token = annotations.get(RESET_ANNOTATION)
    if token and token != state.tokens.get("reset"):
        state.tokens["reset"] = token
        reset(f"reset by {RESET_ANNOTATION}={token}")
    if generation_changed:
        reset("the spec changed")


# -- 2. record runs ------------------------------------------------------------------


def _counted(state: RunState, job: Mapping[str, Any]) -> bool:
    name = job["metadata"]["name"]
    previous = state.history.get(name)
    annotated = (job["metadata"].get("annotations") or {}).get(RECORDED_ANNOTATION) == "true"
    if previous is not None:
        # The operator marks a Job only after its result is in the history: a
        # mark on a run the history still shows running was set by someone else
        # (anyone who may patch Jobs), and must not hide the run's outcome.
        return previous.result is not None or name in state.recorded_jobs
    return annotated or name in state.recorded_jobs


def _outside_window(
    cadence: Cadence | None, spec: ScheduleSpec, state: RunState, record: RunRecord
) -> str:
    """Why a CronJob's new run falls outside startTime, endTime or maxRuns ("" if it does not).

    The operator suspends the CronJob outside the window, but the CronJob
    controller starts a fire time it missed while suspended as soon as it is
    resumed (within startingDeadlineSeconds, or at all without one), and a
    fire time at endTime may come before the suspension does.
    """
    if (
        cadence is None
        or not cadence.native
        or record.trigger is not RunTrigger.SCHEDULED
        or not record.scheduled_time
    ):
        return ""
    fire = from_rfc3339(record.scheduled_time)
    if cadence.start is not None and fire < cadence.start:
        return f"before startTime {to_rfc3339(cadence.start)}"
    if cadence.end is not None and fire >= cadence.end:
        return f"at or after endTime {to_rfc3339(cadence.end)}"
    if runs_left(spec, state.scheduled_runs) == 0:
        return f"after the last of maxRuns ({spec.max_runs})"
    return ""


def _record_runs(
    state: RunState,
    spec: ScheduleSpec,
    jobs: Sequence[Mapping[str, Any]],
    seen: Observations,
    now: datetime,
    out: Tracking,
) -> list[tuple[RunRecord, str]]:
    """New runs enter the history; finished or unstartable ones get their result once."""
    newly_finished: list[tuple[RunRecord, str]] = []
    for job in sorted(jobs, key=lambda j: j["metadata"].get("creationTimestamp", "")):
        name = job["metadata"]["name"]
        if _counted(state, job):
            continue
        previous = state.history.get(name)
        pods = seen.pods.get(name, ())
        record = run_record(job, pods)
        if previous is None and not _deleting(job):
            outside = _outside_window(seen.cadence, spec, state, record)
            if outside:
                # Stopped, listed in the ledger so it is looked at once, never counted.
                state.record(name)
                out.delete_jobs.append(name)
                out.event(
                    "Warning",
                    Reason.RUN_OUTSIDE_WINDOW,
                    f"The CronJob started {name} for {record.scheduled_time}, {outside}: "
                    "the run is stopped and not counted",
                )
                continue
        if previous is None and record.trigger in (RunTrigger.SCHEDULED, RunTrigger.CATCH_UP):
            state.scheduled_runs += 1
        if previous is None and record.result is None:
            out.event(
                "Normal",
                Reason.RUN_STARTED,
                f"Run {name} started ({record.trigger.value}, attempt {record.attempt})",
            )
        if record.result is None:
            announced = previous.reason if previous is not None else ""
            record = _blocked_state(record, job, pods, spec, seen, announced, now, out)
        state.history[name] = record
        if record.result is not None and seen.has_downstreams:
            data = runner_data(pods)
            if data is not None:
                state.data[name] = data
        if record.result is not None:
            if record.reason == EndReason.BLOCKED:
                out.delete_jobs.append(name)
            newly_finished.append((record, origin_of(job)))
    return newly_finished


def _blocked_state(
    record: RunRecord,
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    spec: ScheduleSpec,
    seen: Observations,
    announced: str,
    now: datetime,
    out: Tracking,
) -> RunRecord:
    """A run that cannot start is reported at once, and failed after startTimeoutSeconds.

    ``announced`` is the blocking reason the history already shows for it, so
    the Warning event is posted once per reason.
    """
    name = job["metadata"]["name"]
    created = from_rfc3339(job["metadata"].get("creationTimestamp") or to_rfc3339(now))
    blocked = blocked_by(job, pods, now, seen.job_messages.get(name, ""))
    if blocked is None:
        if not pods and not (job.get("spec") or {}).get("suspend"):
            # No pod yet: look again when the Job's events are read, and when
            # a missing pod counts as blocked even without one.
            for wait in (NO_POD_GRACE, NO_POD_SILENT_GRACE):
                if now < created + wait:
                    out.wake(created + wait + timedelta(seconds=1))
                    break
        return record
    reason, message = blocked
    deadline = created + timedelta(seconds=spec.start_timeout_seconds)
    if now >= deadline:
        return record.model_copy(
            update={
                "result": RunResult.FAILED,
                "reason": EndReason.BLOCKED.value,
                "completion_time": to_rfc3339(now),
                "message": (
                    f"did not start within startTimeoutSeconds ({spec.start_timeout_seconds}s): "
                    f"{reason}: {message}"
                )[:1024],
            }
        )
    out.wake(deadline)
    out.blocked = Blocked(name, reason, message)
    if announced != reason:
        out.event(
            "Warning",
            Reason.RUN_BLOCKED,
            f"Run {name} cannot start: {reason}: {message}; it is failed as Blocked at "
            f"{to_rfc3339(deadline)} unless it starts",
        )
    return record.model_copy(update={"reason": reason, "message": message[:1024]})


def _close_gone_runs(
    state: RunState,
    spec: ScheduleSpec,
    by_name: Mapping[str, Mapping[str, Any]],
    seen: Observations,
    now: datetime,
    out: Tracking,
) -> list[tuple[RunRecord, str]]:
    """A running run whose Job is deleted (by Replace, or by a person) ends as Cancelled."""
    closed: list[tuple[RunRecord, str]] = []
    for name, record in list(state.history.items()):
        if record.result is not None or name in state.recorded_jobs:
            continue
        job = by_name.get(name)
        if job is not None and not _deleting(job):
            continue
        if job is None and not seen.warm:
            continue  # the Job may simply not be listed yet
        replaced = (
            spec.concurrency_policy is ConcurrencyPolicy.REPLACE
            and record.trigger is RunTrigger.SCHEDULED
        )
        reason = EndReason.REPLACED if replaced else EndReason.DELETED
        why = (
            "a newer run replaced it (concurrencyPolicy Replace)"
            if replaced
            else "its Job was deleted before the operator saw it finish"
        )
        state.history[name] = _cancelled(record, reason, why, now)
        origin = state.retry_of if record.trigger is RunTrigger.RETRY else record.job
        closed.append((state.history[name], origin or record.job))
    return closed


def _cancelled(record: RunRecord, reason: EndReason, why: str, now: datetime) -> RunRecord:
    return record.model_copy(
        update={
            "result": RunResult.CANCELLED,
            "reason": reason.value,
            "completion_time": to_rfc3339(now),
            "message": why,
        }
    )


def _count_cancelled(state: RunState, record: RunRecord, origin: str, out: Tracking) -> None:
    """A cancelled run is counted and announced, never retried; a cancelled retry
    ends its cycle."""
    state.counts["cancelled"] += 1
    abandoned = ""
    if record.trigger is RunTrigger.RETRY and state.retry_of == origin:
        state.clear_retries()
        abandoned = "; its retry cycle ends"
    out.event(
        "Normal",
        Reason.RUN_CANCELLED,
        f"Run {record.job} was cancelled ({record.reason}): {record.message}{abandoned}",
    )


# -- 3. results and the retry policy -------------------------------------------------


def _apply_retry_policy(
    state: RunState,
    spec: ScheduleSpec,
    newly_finished: list[tuple[RunRecord, str]],
    now: datetime,
    out: Tracking,
) -> None:
    policy = spec.retry
    newly_finished.sort(key=lambda pair: pair[0].completion_time or "")
    for record, origin in newly_finished:
        state.record(record.job)
        out.finished.append(record)
        took = f" in {record.duration_seconds:.0f}s" if record.duration_seconds is not None else ""
        detail = f": {record.message}" if record.message else ""
        if record.result is RunResult.SUCCEEDED:
            state.counts["succeeded"] += 1
            state.last_success = record.completion_time
            state.failed, state.consecutive = False, 0
            state.clear_retries()
            out.event("Normal", Reason.RUN_SUCCEEDED, f"Run {record.job} succeeded{took}{detail}")
            _end_cycle(state, record, origin)
            continue
        if record.result is RunResult.CANCELLED:
            _count_cancelled(state, record, origin, out)
            _end_cycle(state, record, origin)
            continue
        state.counts["failed"] += 1
        state.last_failure = record.completion_time
        state.consecutive += 1
        outcome = "timed out" if record.result is RunResult.TIMED_OUT else "failed"
        code = f" with exit code {record.exit_code}" if record.exit_code is not None else ""
        out.event("Warning", Reason.RUN_FAILED, f"Run {record.job} {outcome}{code}{took}{detail}")
        if record.exit_code == PERMANENT_FAILURE_EXIT_CODE:
            # A permanent failure: retrying the same input cannot help.
            _end_cycle(state, record, origin)
            continue
        if state.failed and policy.on_exhausted is OnExhausted.SUSPEND:
            # Halted until reset: a manual run's failure starts no retries.
            _end_cycle(state, record, origin)
            continue
        if record.trigger is not RunTrigger.RETRY or state.retry_of is None:
            # A scheduled or manual run starts a fresh retry cycle.
            state.retry_count, state.retry_of = 0, origin
        state.tokens.pop("retryDeferred", None)
        state.tokens.pop("retryHeld", None)
        if state.retry_count < policy.max_retries:
            delay = retry_delay(policy.backoff, state.retry_count)
            state.retry_count += 1
            finished_at = from_rfc3339(record.completion_time) if record.completion_time else now
            state.next_retry = to_rfc3339(finished_at + delay)
            out.event(
                "Normal",
                Reason.RETRY_SCHEDULED,
                f"Retry {state.retry_count} of {policy.max_retries} for {state.retry_of} "
                f"at {state.next_retry} (after {delay.total_seconds():.0f}s)",
            )
            continue
        state.failed, state.next_retry = True, None
        _end_cycle(state, record, origin)
        suspended = policy.on_exhausted is OnExhausted.SUSPEND
        then = (
            "the CronJob is suspended until reset"
            if suspended
            else "the schedule keeps its cadence and retries its next failing run"
        )
        out.event(
            "Warning",
            Reason.RETRIES_EXHAUSTED,
            f"Run {state.retry_of} failed and all {policy.max_retries} retries failed; {then} "
            f"(annotate {RESET_ANNOTATION} with a new value to reset)",
        )


def _end_cycle(state: RunState, record: RunRecord, origin: str) -> None:
    """A run cycle (the run ``origin`` and its retries) ended with ``record``: downstream
    Schedules (spec.after) start on it."""
    assert record.result is not None
    first = state.history.get(origin)
    trigger = first.trigger if first is not None else record.trigger
    if trigger is RunTrigger.RETRY:
        trigger = RunTrigger.SCHEDULED  # the first run's entry is trimmed: the usual case
    number = (state.cycles[0].number if state.cycles else 0) + 1
    state.cycles.insert(
        0,
        CycleRecord(
            number=number,
            run=record.job,
            result=cycle_result(record.result),
            trigger=trigger,
            finished_time=record.completion_time,
            data=state.data.get(record.job),
        ),
    )
    del state.cycles[CYCLES_KEPT:]


# -- 4. retries and manual runs, within concurrencyPolicy ----------------------------


def _make_room(
    state: RunState,
    spec: ScheduleSpec,
    by_name: Mapping[str, Mapping[str, Any]],
    now: datetime,
    out: Tracking,
) -> bool:
    """Whether a new run may start now; under Replace, the running ones are stopped."""
    active = [
        record
        for record in state.active()
        if record.job in by_name and not _deleting(by_name[record.job])
    ]
    if not active or spec.concurrency_policy is ConcurrencyPolicy.ALLOW:
        return True
    if spec.concurrency_policy is ConcurrencyPolicy.FORBID:
        return False
    for record in active:
        out.delete_jobs.append(record.job)
        replaced = _cancelled(
            record, EndReason.REPLACED, "a newer run replaces it (concurrencyPolicy Replace)", now
        )
        state.history[record.job] = replaced
        state.record(record.job)
        out.finished.append(replaced)
        origin = state.retry_of or record.job
        _count_cancelled(state, replaced, origin, out)
        _end_cycle(state, replaced, origin)
    return True


def _run(
    schedule: Mapping[str, Any],
    spec: ScheduleSpec,
    config: OperatorConfig,
    *,
    job_name: str,
    trigger: RunTrigger,
    scheduled_time: str | None,
    attempt: int = 0,
    origin: str | None = None,
    upstream: UpstreamFacts | None = None,
) -> Manifest:
    """A Job the operator starts itself for this Schedule; only retries have an
    attempt and an origin, only after runs an upstream."""
    meta = schedule["metadata"]
    return run_job(
        meta["namespace"],
        meta["name"],
        meta["uid"],
        spec,
        config,
        job_name=job_name,
        trigger=trigger,
        attempt=attempt,
        scheduled_time=scheduled_time,
        origin=origin,
        upstream=upstream,
    )


def _start_due_retry(
    state: RunState,
    schedule: Mapping[str, Any],
    spec: ScheduleSpec,
    config: OperatorConfig,
    by_name: Mapping[str, Mapping[str, Any]],
    now: datetime,
    out: Tracking,
) -> None:
    """A retry that is due is created (again after a restart: same name)."""
    if not (state.next_retry and state.retry_of):
        return
    if state.failed and spec.retry.on_exhausted is OnExhausted.SUSPEND:
        return
    due = from_rfc3339(state.next_retry)
    if now < due:
        out.wake(due)
        return
    label = f"{state.retry_of}/{state.retry_count}"
    if state.held is not None:
        if state.tokens.get("retryHeld") != label:
            state.tokens["retryHeld"] = label
            after = (
                "removing the annotation lets it start"
                if state.held.by_annotation
                else "resuming (a spec change) drops it"
            )
            out.event(
                "Normal",
                Reason.RETRY_HELD,
                f"Retry {state.retry_count} of {state.retry_of} is held while the schedule is "
                f"{state.held.describe()}; {after}",
            )
        return
    if not _make_room(state, spec, by_name, now, out):
        if state.tokens.get("retryDeferred") != label:
            state.tokens["retryDeferred"] = label
            running = ", ".join(record.job for record in state.active())
            out.event(
                "Normal",
                Reason.RETRY_DEFERRED,
                f"Retry {state.retry_count} of {state.retry_of} waits for {running} to finish "
                "(concurrencyPolicy Forbid)",
            )
        return
    origin = state.history.get(state.retry_of)
    out.create_jobs.append(
        _run(
            schedule,
            spec,
            config,
            job_name=retry_job_name(
                cronjob_name(schedule["metadata"]["name"]), state.retry_of, state.retry_count
            ),
            trigger=RunTrigger.RETRY,
            attempt=state.retry_count,
            scheduled_time=origin.scheduled_time if origin else None,
            origin=state.retry_of,
        )
    )
    state.next_retry = None
    state.tokens.pop("retryDeferred", None)


def _run_now(
    state: RunState,
    schedule: Mapping[str, Any],
    spec: ScheduleSpec,
    config: OperatorConfig,
    annotations: Mapping[str, str],
    by_name: Mapping[str, Mapping[str, Any]],
    now: datetime,
    out: Tracking,
) -> None:
    """One manual run per distinct token, within suspend and concurrencyPolicy."""
    token = annotations.get(RUN_NOW_ANNOTATION)
    if not token or token == state.tokens.get("runNow"):
        return
    if state.held is not None:
        state.tokens["runNow"] = token
        why = f"the schedule is {state.held.describe()}; resume it, then annotate with a new value"
        state.note_manual_run(token, ManualRunState.REFUSED, now, why=why)
        out.event(
            "Warning", Reason.RUN_NOW_REFUSED, f"{RUN_NOW_ANNOTATION}={token} is refused: {why}"
        )
        return
    manual = [r for r in state.active() if r.trigger is RunTrigger.MANUAL and r.job in by_name]
    too_many = (
        spec.concurrency_policy is ConcurrencyPolicy.ALLOW and len(manual) >= MAX_ACTIVE_MANUAL_RUNS
    )
    if too_many or not _make_room(state, spec, by_name, now, out):
        if state.tokens.get("runNowDeferred") != token:
            state.tokens["runNowDeferred"] = token
            why = (
                f"{len(manual)} manual runs are still running (at most "
                f"{MAX_ACTIVE_MANUAL_RUNS} at once)"
                if too_many
                else "a run is still running and concurrencyPolicy is Forbid"
            )
            state.note_manual_run(token, ManualRunState.DEFERRED, now, why=why)
            out.event(
                "Normal",
                Reason.RUN_NOW_DEFERRED,
                f"{RUN_NOW_ANNOTATION}={token} waits: {why}",
            )
        return
    state.tokens["runNow"] = token
    state.tokens.pop("runNowDeferred", None)
    job_name = manual_job_name(cronjob_name(schedule["metadata"]["name"]), token)
    state.note_manual_run(token, ManualRunState.STARTED, now, job=job_name)
    out.create_jobs.append(
        _run(
            schedule,
            spec,
            config,
            job_name=job_name,
            trigger=RunTrigger.MANUAL,
            scheduled_time=to_rfc3339(now),
        )
    )


def _start_due_fire_time(
    state: RunState,
    schedule: Mapping[str, Any],
    spec: ScheduleSpec,
    config: OperatorConfig,
    by_name: Mapping[str, Mapping[str, Any]],
    seen: Observations,
    now: datetime,
    out: Tracking,
) -> None:
    """Start the run of an ``every`` or ``at`` fire time that is due, as a CronJob would.

    Only the latest due fire time runs (within startingDeadlineSeconds); the
    ones before it are missed runs. The Job's name comes from the fire time,
    and the fire time is remembered in lastRunTime, so no restart starts it twice.
    """
    cadence = seen.cadence
    if cadence is None or cadence.native or cadence.kind is CadenceKind.MANUAL:
        return
    halted = state.held is not None or (
        state.failed and spec.retry.on_exhausted is OnExhausted.SUSPEND
    )
    left = runs_left(spec, state.scheduled_runs)
    since = from_rfc3339(state.last_fire) if state.last_fire else seen.created or now
    if halted or left == 0:
        # Fire times while paused or failed are skipped, not missed: resuming
        # neither starts nor catches them up.
        passed = cadence.fire_times(since, now)
        if passed:
            state.last_fire = to_rfc3339(passed[-1])
        return
    if state.last_fire is None and cadence.at is not None and cadence.at <= since:
        # An `at` already past at creation runs only if a catch-up window covers it.
        state.last_fire = to_rfc3339(cadence.at)
        _queue_catch_up(state, spec, [to_rfc3339(cadence.at)], None, now, out)
        return
    due = cadence.fire_times(since, now)
    if not due:
        upcoming = cadence.next_after(max(since, now))
        if upcoming is not None:
            out.wake(upcoming)
        return
    fire = due[-1]
    upcoming = cadence.next_after(fire)
    if upcoming is not None:
        out.wake(upcoming)
    deadline = fire + timedelta(seconds=spec.starting_deadline_seconds)
    late = now > deadline
    # Fire times the operator skips (it was down, or too late to start them) are
    # missed runs, reported by the missed-run check; catch-up runs them now.
    skipped = [to_rfc3339(time) for time in (due if late else due[:-1])]
    ran = from_rfc3339(state.last_fire) if state.last_fire else None
    _queue_catch_up(state, spec, skipped, ran if late else fire, now, out)
    if late:
        state.last_fire = to_rfc3339(fire)
        return
    meta = schedule["metadata"]
    cronjob = cronjob_name(meta["name"])
    job_name = f"{cronjob}-{int(fire.timestamp())}"
    if job_name in by_name or job_name in state.recorded_jobs:
        state.last_fire = to_rfc3339(fire)  # already started
        return
    if not _make_room(state, spec, by_name, now, out):
        out.wake(deadline)  # Forbid: wait for the running run, up to the deadline
        return
    out.create_jobs.append(
        _run(
            schedule,
            spec,
            config,
            job_name=job_name,
            trigger=RunTrigger.SCHEDULED,
            scheduled_time=to_rfc3339(fire),
        )
    )
    state.last_fire = to_rfc3339(fire)


def _trim_scheduled_jobs(
    state: RunState, spec: ScheduleSpec, jobs: Sequence[Mapping[str, Any]], out: Tracking
) -> None:
    """The history limits a CronJob applies to its Jobs, for the scheduled Jobs the
    operator starts itself: only counted ones go, the newest are kept."""
    kept = {True: spec.history.successful_jobs, False: spec.history.failed_jobs}
    finished = sorted(
        (
            job
            for job in jobs
            if trigger_of(job) is RunTrigger.SCHEDULED
            and not _deleting(job)
            and job_result(job) is not None
            and job["metadata"]["name"] in state.recorded_jobs
        ),
        key=lambda job: str(job["metadata"].get("creationTimestamp") or ""),
        reverse=True,
    )
    for job in finished:
        succeeded = job_result(job) is RunResult.SUCCEEDED
        if kept[succeeded] > 0:
            kept[succeeded] -= 1
        elif job["metadata"]["name"] not in out.delete_jobs:
            out.delete_jobs.append(job["metadata"]["name"])


def _backfill(
    state: RunState,
    spec: ScheduleSpec,
    annotations: Mapping[str, str],
    seen: Observations,
    out: Tracking,
) -> None:
    """``cronfleet.io/backfill: <from>/<to>``: one run per fire time in the range."""
    value = annotations.get(BACKFILL_ANNOTATION)
    if not value or value == state.tokens.get("backfill"):
        return
    state.tokens["backfill"] = value

    def refuse(why: str) -> None:
        out.event("Warning", Reason.BACKFILL_REFUSED, f"{BACKFILL_ANNOTATION}={value}: {why}")

    try:
        first, last = (from_rfc3339(part.strip()) for part in value.split("/"))
    except ValueError:
        refuse(
            "write two RFC 3339 instants, <from>/<to>, "
            "e.g. 2026-11-01T00:00:00Z/2026-11-02T00:00:00Z"
        )
        return
    cadence = seen.cadence
    if last < first:
        refuse("the range ends before it starts")
        return
    if cadence is None or cadence.kind is CadenceKind.MANUAL:
        refuse("the Schedule has no cadence, so the range has no fire times")
        return
    times = cadence.fire_times(first - timedelta(seconds=1), last)
    if not times:
        refuse("no fire time of the Schedule falls in the range")
        return
    taken = times[:MAX_BACKFILL_RUNS]
    state.queued += [
        QueuedRun(trigger=RunTrigger.BACKFILL, scheduled_time=to_rfc3339(fire), request=value)
        for fire in taken
    ]
    capped = (
        f" (the first {MAX_BACKFILL_RUNS} of {len(times)}: at most {MAX_BACKFILL_RUNS} per request)"
        if len(times) > len(taken)
        else ""
    )
    out.event(
        "Normal",
        Reason.BACKFILL_QUEUED,
        f"{len(taken)} backfill runs for {to_rfc3339(taken[0])} to {to_rfc3339(taken[-1])}"
        f"{capped}; they run one after another under concurrencyPolicy "
        f"{spec.concurrency_policy.value}",
    )


def _queued_job_name(cronjob: str, queued: QueuedRun) -> str:
    if queued.trigger is RunTrigger.AFTER:
        return after_job_name(cronjob, queued.upstream, queued.upstream_run)
    if queued.trigger is RunTrigger.BACKFILL:
        return backfill_job_name(cronjob, queued.request, queued.scheduled_time)
    return catch_up_job_name(cronjob, queued.scheduled_time)


def _start_queued(
    state: RunState,
    schedule: Mapping[str, Any],
    spec: ScheduleSpec,
    config: OperatorConfig,
    by_name: Mapping[str, Mapping[str, Any]],
    out: Tracking,
) -> None:
    """Start waiting catch-up, backfill and after runs, oldest first, within
    concurrencyPolicy: one at a time unless it is Allow (then a few at once); never
    while halted."""
    if not state.queued:
        return
    if state.held is not None or (state.failed and spec.retry.on_exhausted is OnExhausted.SUSPEND):
        return
    meta = schedule["metadata"]
    cronjob = cronjob_name(meta["name"])
    active = [r for r in state.active() if r.job in by_name and not _deleting(by_name[r.job])]
    running = len(active) + len(out.create_jobs)
    limit = MAX_ACTIVE_MANUAL_RUNS if spec.concurrency_policy is ConcurrencyPolicy.ALLOW else 1
    while state.queued and running < limit:
        queued = state.queued.pop(0)
        upstream = None
        if queued.trigger is RunTrigger.AFTER:
            upstream = UpstreamFacts(
                schedule=f"{meta['namespace']}/{queued.upstream}",
                run=queued.upstream_run,
                result=queued.upstream_result,
                data=queued.upstream_data or None,
            )
        out.create_jobs.append(
            _run(
                schedule,
                spec,
                config,
                job_name=_queued_job_name(cronjob, queued),
                trigger=queued.trigger,
                scheduled_time=queued.scheduled_time or None,
                upstream=upstream,
            )
        )
        running += 1


def _follow_upstreams(
    state: RunState,
    status: Mapping[str, Any],
    spec: ScheduleSpec,
    seen: Observations,
    out: Tracking,
) -> None:
    """Queue a run for each upstream cycle that ended the way spec.after asks for."""
    if not spec.after:
        state.upstreams = {}
        return
    # A Schedule first reconciled follows cycles that ended since its creation;
    # one that gained an upstream later, those that end from now on.
    since = seen.created if "upstreams" not in status else None
    followed = follow_upstreams(spec.after, state.upstreams, seen.upstreams, since)
    state.upstreams = {u.schedule: u for u in followed.upstreams}
    state.queued.extend(followed.queued)
    for kind, reason, message in followed.events:
        out.events.append(Event(kind, reason, message))


# -- 5. missed runs --------------------------------------------------------------------


def _missed_runs(
    state: RunState,
    status: Mapping[str, Any],
    spec: ScheduleSpec,
    jobs: Sequence[Mapping[str, Any]],
    seen: Observations,
    now: datetime,
    suspended: bool,
    generation_changed: bool,
    out: Tracking,
) -> None:
    """Fire times with no run, judged from what no limit trims away.

    A fire time is settled as soon as a Job for it, or for a later fire time,
    is seen (the CronJob controller never goes back to an earlier one), so the
    check moves on while the Jobs exist; Jobs and history entries that limits
    remove later are never needed again. A fire time nothing ran for is a miss
    once its starting deadline has passed.
    """
    phase = status.get("phase")
    was_suspended = phase == "Paused" or (
        phase == "Failed" and spec.retry.on_exhausted is OnExhausted.SUSPEND
    )
    if state.checked_until is None or generation_changed or (was_suspended and not suspended):
        # Fire times before the operator first saw the schedule, of an earlier
        # spec, or skipped while it was paused or failed, are not misses.
        state.checked_until = to_rfc3339(now)
        return
    if suspended:
        state.checked_until = to_rfc3339(max(now, from_rfc3339(state.checked_until)))
        return
    cadence = seen.cadence
    if cadence is None or cadence.kind is CadenceKind.MANUAL:
        return
    deadline = timedelta(seconds=spec.starting_deadline_seconds) + MISSED_RUN_GRACE
    horizon = now - deadline
    ran: set[datetime] = set()
    for record in state.history.values():
        if record.scheduled_time and record.trigger is RunTrigger.SCHEDULED:
            ran.add(from_rfc3339(record.scheduled_time))
    for job in jobs:
        due = scheduled_time(job)
        if due is not None and trigger_of(job) is RunTrigger.SCHEDULED:
            ran.add(due)
    known = [*ran, *([seen.last_schedule_time] if seen.last_schedule_time else [])]
    latest_run = max(known) if known else None
    checked = from_rfc3339(state.checked_until)
    missed: list[MissedRun] = []
    moment = checked
    while len(missed) < MISSED_RUNS_PER_CHECK:
        fire = cadence.next_after(moment)
        if fire is None:
            break
        if fire not in ran:
            # A later fire time has run: the controller never goes back to this one.
            settled = latest_run is not None and fire < latest_run
            if not settled and fire > horizon:
                out.wake(fire + deadline)
                break
            cause, reason = _miss_reason(spec, list(state.history.values()), fire, cadence.native)
            missed.append(
                MissedRun(scheduled_time=to_rfc3339(fire), reason=reason, cause=cause.value)
            )
        moment = fire
    state.checked_until = to_rfc3339(moment)
    if len(missed) >= MISSED_RUNS_PER_CHECK:
        out.wake(now)  # more to judge: summarised over the next reconciles
    for miss in missed:
        out.event("Warning", Reason.MISSED_RUN, f"No run for {miss.scheduled_time}: {miss.reason}")
    state.counts["missed"] += len(missed)
    state.missed_runs = list(reversed(missed)) + state.missed_runs
    out.missed = missed
    if cadence.native:
        # The operator's own cadences queue their catch-up the moment they skip a
        # fire time (see _start_due_fire_time); the CronJob's are known only now.
        not_started = [m.scheduled_time for m in missed if m.cause == MissCause.NOT_STARTED]
        _queue_catch_up(state, spec, not_started, latest_run, now, out)


def _queue_catch_up(
    state: RunState,
    spec: ScheduleSpec,
    fires: Sequence[str],
    latest_run: datetime | None,
    now: datetime,
    out: Tracking,
) -> None:
    """Fire times missed while runs could not start, still inside the window, are run.

    ``fires`` are such fire times; ``latest_run`` is the latest fire time that
    did run, so Latest skips a miss that a later run already made up for.
    """
    policy = spec.catch_up
    if policy.policy is CatchUpPolicy.NONE:
        return
    window = timedelta(seconds=policy.window_seconds)
    caught = {r.scheduled_time for r in state.history.values() if r.trigger is RunTrigger.CATCH_UP}
    candidates = sorted(
        fire for fire in fires if now - from_rfc3339(fire) <= window and fire not in caught
    )
    if policy.policy is CatchUpPolicy.LATEST and candidates:
        newest = candidates[-1]
        ran_since = latest_run is not None and latest_run > from_rfc3339(newest)
        candidates = [] if ran_since else [newest]
        if candidates:
            # Latest: an older catch-up still waiting is superseded.
            state.queued = [q for q in state.queued if q.trigger is not RunTrigger.CATCH_UP]
    queued = {(q.trigger, q.scheduled_time) for q in state.queued}
    for fire in candidates:
        if (RunTrigger.CATCH_UP, fire) in queued:
            continue
        state.queued.append(QueuedRun(trigger=RunTrigger.CATCH_UP, scheduled_time=fire))
        out.wake(now)  # started on the next look, within concurrencyPolicy
        out.event(
            "Normal",
            Reason.CATCH_UP_QUEUED,
            f"The missed fire time {fire} runs now (catchUp {policy.policy.value})",
        )


def _miss_reason(
    spec: ScheduleSpec, history: Sequence[RunRecord], fire: datetime, native: bool = True
) -> tuple[MissCause, str]:
    for record in history:
        if not record.start_time:
            continue
        started = from_rfc3339(record.start_time)
        ended = from_rfc3339(record.completion_time) if record.completion_time else None
        overlapping = started <= fire and (ended is None or ended > fire)
        if overlapping and spec.concurrency_policy is ConcurrencyPolicy.FORBID:
            return (
                MissCause.CONCURRENCY_FORBID,
                f"run {record.job} was still running and concurrencyPolicy is Forbid",
            )
    who = "the CronJob controller" if native else "the operator"
    return (
        MissCause.NOT_STARTED,
        f"no Job started within startingDeadlineSeconds ({spec.starting_deadline_seconds}s); "
        f"{who} may have been unavailable",
    )
