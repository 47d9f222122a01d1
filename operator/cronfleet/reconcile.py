"""Decide what a Schedule needs: a pure function of what was observed and ``now``.

The reconcile reads as numbered steps: (1) validate the spec, (2) build the
desired CronJob, (3) compare it with the observed one, (4) compute the
status, (5) say which events to post and when to look again. Nothing here
touches the network; ``cronfleet.controller`` carries the plan out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from cronfleet.cadence import Cadence, CadenceKind, spec_cadence
from cronfleet.chains import UpstreamView, describe_cycle
from cronfleet.clock import from_rfc3339, to_rfc3339
from cronfleet.config import OperatorConfig
from cronfleet.cronschedule import CronError, describe, next_fire_time, parse, zone
from cronfleet.manifests import Manifest, contains, desired_cronjob
from cronfleet.models import (
    ConcurrencyPolicy,
    HistoryPolicy,
    MissedRun,
    OnExhausted,
    Phase,
    RetryPolicy,
    RunRecord,
    ScheduleSpec,
)
from cronfleet.naming import cronjob_name
from cronfleet.pausing import PAUSE_ANNOTATION, Suspension, suspension
from cronfleet.statusbudget import fit_status
from cronfleet.tracking import (
    RESET_ANNOTATION,
    Blocked,
    Event,
    Observations,
    Reason,
    runs_left,
    track,
)
from cronfleet.validation import ParamsCheck, Problem, missing_service_account, validate_spec

READY = "Ready"
# kstatus' abnormal-true conditions: Flux, kpt and kubectl-style waits read them.
STALLED = "Stalled"
RECONCILING = "Reconciling"
RUN_BLOCKED = "RunBlocked"
UPSTREAMS_FOUND = "UpstreamsFound"
# Look again shortly after a fire time, so nextRunTime moves on even when the
# CronJob controller reports nothing (a suspended or skipped run).
REFRESH_DELAY = timedelta(seconds=1)
# A run's startTime alone waits this long to be written: most runs end sooner,
# and their end's write carries it (one status write per run saved).
START_WRITE_DELAY = timedelta(seconds=10)
# A referenced ServiceAccount that is missing is looked for again this often.
SERVICE_ACCOUNT_RECHECK = timedelta(seconds=10)


@dataclass(frozen=True)
class Observed:
    """What the controller read for one Schedule."""

    schedule: Mapping[str, Any]
    cronjob: Mapping[str, Any] | None
    # None when the spec names none, or while the operator's cache of
    # ServiceAccounts is still filling (then it is not judged).
    service_account_exists: bool | None
    known_tasks: frozenset[str] | None
    check_params: ParamsCheck | None = None
    jobs: Sequence[Mapping[str, Any]] = ()
    pods: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    # Whether the caches are complete (the first listings are in).
    check_missed: bool = True
    job_messages: Mapping[str, str] = field(default_factory=dict)
    # What the API server said when it refused the CronJob of this generation.
    cronjob_rejection: str | None = None
    # spec.after's upstreams by name (None: no such Schedule); one not listed is
    # not judged yet. The Schedules that run after this one, and a cycle of
    # spec.after through this one (``[a, b, a]``), if there is one.
    upstreams: Mapping[str, UpstreamView | None] = field(default_factory=dict)
    downstreams: Sequence[str] = ()
    after_cycle: Sequence[str] | None = None
    # Why this Schedule may not take its CronJob name (another Schedule holds
    # it, or a CronJob it does not control has it): it then starts nothing.
    ownership_conflict: str | None = None


@dataclass
class Plan:
    apply_cronjob: Manifest | None = None
    status_patch: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requeue_at: datetime | None = None
    create_jobs: list[Manifest] = field(default_factory=list)
    delete_jobs: list[str] = field(default_factory=list)
    delete_cronjob: bool = False  # the cadence is no longer a cron
    delete_schedule: bool = False  # Completed, and its ttlSecondsAfterCompleted ran out
    recorded: list[str] = field(default_factory=list)  # Jobs to annotate as counted
    finished: list[RunRecord] = field(default_factory=list)
    missed: list[MissedRun] = field(default_factory=list)

    def wake(self, at: datetime | None) -> None:
        if at is not None:
            self.requeue_at = min(self.requeue_at, at) if self.requeue_at else at


def _condition(
    previous: list[Mapping[str, Any]],
    status: str,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
    kind: str = READY,
) -> dict[str, Any]:
    old = next((c for c in previous if c.get("type") == kind), None)
    # lastTransitionTime moves only when the status itself flips.
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since or to_rfc3339(now),
    }


def _conditions(
    previous: list[Mapping[str, Any]],
    ready: tuple[str, str, str],
    stalled: bool,
    blocked: Blocked | None,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Ready, plus the kstatus conventions: Stalled, Reconciling, and RunBlocked."""
    status, reason, message = ready

    def condition(kind: str, value: bool, why: str, text: str = "") -> dict[str, Any]:
        flag = "True" if value else "False"
        return _condition(previous, flag, why, text, generation, now, kind)

    return [
        _condition(previous, status, reason, message, generation, now),
        condition(STALLED, stalled, *((reason, message) if stalled else ("Progressing", ""))),
        # The status is written for the generation it reflects in one write,
        # so once written the operator has caught up with the spec.
        condition(RECONCILING, False, "Reconciled"),
        condition(
            RUN_BLOCKED,
            blocked is not None,
            blocked.reason if blocked else "NoBlockedRuns",
            f"run {blocked.job} cannot start: {blocked.message}" if blocked else "",
        ),
    ]


def _lenient_spec(raw: Mapping[str, Any]) -> ScheduleSpec:
    """The policies of an invalid spec that still parse, to keep recording its runs.

    The last valid CronJob keeps firing while a later spec is invalid; its
    runs are recorded and counted with whatever of the new spec is valid.
    """
    values: dict[str, Any] = {"cron": "", "task": ""}
    for key, model in (("history", HistoryPolicy), ("retry", RetryPolicy)):
        try:
            values[key] = model.model_validate(raw.get(key) or {})
        except ValueError:
            values[key] = model()
    with contextlib.suppress(ValueError):
        values["concurrency_policy"] = ConcurrencyPolicy(raw.get("concurrencyPolicy", "Forbid"))
    return ScheduleSpec.model_construct(**values)


def _cadence(spec: ScheduleSpec, schedule: Mapping[str, Any]) -> Cadence | None:
    try:
        return spec_cadence(spec, _created(schedule))
    except (CronError, ValueError):
        return None  # reported by validation


def _never_fires(spec: ScheduleSpec, cadence: Cadence, now: datetime) -> Problem | None:
    if cadence.kind is not CadenceKind.CRON or cadence.cron is None:
        return None
    if next_fire_time(cadence.cron, now, cadence.time_zone) is not None:
        return None
    return Problem(
        "cron",
        repr(spec.cron),
        "it never fires: no date in the next five years matches all its fields "
        "(for example the 31st of February); the CronJob would never start a run",
    )


def _next_run(cron: str, time_zone: str, now: datetime) -> datetime | None:
    try:
        return next_fire_time(parse(cron), now, zone(time_zone))
    except CronError:
        return None


def decide(observed: Observed, config: OperatorConfig, now: datetime) -> Plan:
    schedule = observed.schedule
    meta = schedule["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    generation = int(meta.get("generation") or 0)
    status: Mapping[str, Any] = schedule.get("status") or {}
    previous_conditions: list[Mapping[str, Any]] = list(status.get("conditions") or [])
    plan = Plan()

    # 1. Validate.
    raw_spec: Mapping[str, Any] = schedule.get("spec") or {}
    spec, problems = validate_spec(raw_spec, observed.known_tasks, observed.check_params)
    if spec is not None and spec.service_account_name:
        if observed.service_account_exists is False:
            problems.append(missing_service_account(spec.service_account_name))
            spec = None
        elif observed.service_account_exists is None:
            plan.wake(now + SERVICE_ACCOUNT_RECHECK)
    cadence = _cadence(spec, schedule) if spec is not None else None
    if spec is not None and cadence is None:
        spec = None  # validation named the problem
    if spec is not None and cadence is not None:
        never = _never_fires(spec, cadence, now)
        if never is not None:
            problems.append(never)
            spec = None
    messages = [problem.message() for problem in problems]
    if observed.ownership_conflict:
        messages.append(observed.ownership_conflict)
        spec = None
    if spec is not None and observed.after_cycle:
        messages.append(
            f"spec.after forms a cycle: {describe_cycle(observed.after_cycle)} (each runs "
            "after the next); a Schedule in it would wait for itself: remove one of these "
            "after entries"
        )
        spec = None
    if spec is not None and observed.cronjob_rejection:
        # A valid-looking spec whose CronJob the API server refused: that is the
        # user's input, reported like any other invalid spec.
        messages.append(f"the CronJob for this spec was rejected: {observed.cronjob_rejection}")
        spec = None

    # 2. Runs: history, retries, the Failed state, run-now, missed runs. While
    # the spec is invalid the last valid CronJob may still fire: its runs are
    # recorded, and nothing new is started.
    tracking = track(
        schedule,
        spec or _lenient_spec(raw_spec),
        observed.jobs,
        observed.pods,
        config,
        now,
        seen=Observations(
            pods=observed.pods,
            warm=observed.check_missed,
            last_schedule_time=_last_schedule_time(observed.cronjob),
            job_messages=observed.job_messages,
            record_only=spec is None,
            cadence=cadence if spec is not None else None,
            created=_created(schedule),
            upstreams=observed.upstreams,
            has_downstreams=bool(observed.downstreams),
        ),
    )
    failed = tracking.failed
    plan.events += tracking.events
    plan.create_jobs = tracking.create_jobs
    plan.delete_jobs = tracking.delete_jobs
    plan.recorded = tracking.recorded
    plan.finished = tracking.finished
    plan.missed = tracking.missed
    plan.wake(tracking.requeue_at)

    # 3. The run cycle's end: an `at` run, the window's end, maxRuns reached.
    scheduled_runs = int(tracking.updates.get("scheduledRuns") or 0)
    left = runs_left(spec, scheduled_runs) if spec is not None else None
    upcoming = cadence.next_after(now) if cadence is not None and left != 0 else None
    finished_cadence = (
        spec is not None
        and cadence is not None
        and cadence.kind is not CadenceKind.MANUAL
        and upcoming is None
    )
    outside_window = cadence is not None and (
        (cadence.start is not None and now < cadence.start) or upcoming is None
    )
    if cadence is not None and cadence.start is not None and now < cadence.start:
        plan.wake(cadence.start)
    if cadence is not None and cadence.end is not None and now < cadence.end:
        plan.wake(cadence.end)
    busy = any(not record.get("result") for record in tracking.updates.get("history") or [])
    pending_retry = bool(tracking.updates.get("nextRetryTime"))
    waiting = bool(tracking.updates.get("queuedRuns")) or bool(tracking.create_jobs)
    completed = finished_cadence and not busy and not pending_retry and not waiting

    # 4. Desired CronJob (a cron cadence only), applied when the observed one lacks part of it.
    cronjob = observed.cronjob
    halted = False
    held = suspension(spec.suspend, meta.get("annotations")) if spec is not None else None
    if spec is not None:
        halted = held is not None or (failed and spec.retry.on_exhausted is OnExhausted.SUSPEND)
    if spec is not None and cadence is not None and cadence.native:
        # startTime, endTime and maxRuns are enforced by suspending the CronJob.
        suspend = halted or tracking.hold_cronjob or outside_window or completed
        desired = desired_cronjob(namespace, name, uid, spec, config, suspend=suspend)
        if cronjob is None or not contains(cronjob, desired):
            plan.apply_cronjob = desired
            cronjob = desired
    elif spec is not None and cronjob is not None:
        # The cadence is no longer a cron: the operator runs it, and the CronJob goes.
        plan.delete_cronjob = True
        cronjob = None

    # 4. Status. nextRunTime follows the CronJob that is really in place: after
    # an invalid update that is still the last valid one. A CronJob held while a
    # retry or manual run goes under Forbid still has its cadence.
    new: dict[str, Any] = {"observedGeneration": generation}
    cron_spec: Mapping[str, Any] = (cronjob or {}).get("spec") or {}
    if cronjob is not None:
        new["cronJob"] = cronjob_name(name)
        new["lastRunTime"] = ((observed.cronjob or {}).get("status") or {}).get("lastScheduleTime")
    else:
        new["cronJob"] = None
        new["lastRunTime"] = None
    next_run = None
    if spec is not None and cadence is not None:
        next_run = None if halted or completed else upcoming
        new["scheduleDescription"] = cadence.describe()
    else:
        # An invalid update: the CronJob in place (the last valid one) still fires.
        if cron_spec and not cron_spec.get("suspend"):
            next_run = _next_run(cron_spec["schedule"], cron_spec.get("timeZone", "UTC"), now)
        new["scheduleDescription"] = (
            describe(cron_spec["schedule"], cron_spec.get("timeZone", "UTC")) if cron_spec else None
        )
    new["nextRunTime"] = to_rfc3339(next_run) if next_run else None
    new["remainingRuns"] = left

    old_phase = status.get("phase")
    stalled = False
    if messages:
        message = "; ".join(messages)
        new.update(phase=Phase.INVALID.value, message=message)
        ready = ("False", "InvalidSpec", message)
        stalled = True
        if old_phase != Phase.INVALID.value or status.get("message") != message:
            plan.events.append(Event("Warning", "InvalidSpec", message))
    elif spec is not None and failed:
        suspended = spec.retry.on_exhausted is OnExhausted.SUSPEND
        message = (
            f"retries exhausted ({spec.retry.max_retries}); "
            + ("the CronJob is suspended" if suspended else "the cadence continues")
            + f"; annotate {RESET_ANNOTATION} with a new value or change the spec to reset"
        )
        new.update(phase=Phase.FAILED.value, message=message)
        ready = ("False", "RetriesExhausted", message)
        stalled = suspended
    elif spec is not None and cadence is not None and completed:
        message = _completion_message(spec, cadence, scheduled_runs, _created(schedule))
        new.update(phase=Phase.COMPLETED.value, message=message)
        ready = ("True", "Completed", message)
        since = status.get("completionTime") if old_phase == Phase.COMPLETED.value else None
        new["completionTime"] = since or to_rfc3339(now)
        if old_phase != Phase.COMPLETED.value:
            kind = "Warning" if scheduled_runs == 0 and spec.at is not None else "Normal"
            plan.events.append(Event(kind, "Completed", message))
        if spec.ttl_seconds_after_completed is not None:
            expires = from_rfc3339(new["completionTime"]) + timedelta(
                seconds=spec.ttl_seconds_after_completed
            )
            if now >= expires:
                plan.delete_schedule = True
            else:
                plan.wake(expires)
    elif spec is not None and held is not None:
        message = _paused_message(held)
        new.update(phase=Phase.PAUSED.value, message=message)
        ready = ("True", "Suspended", message)
        if old_phase != Phase.PAUSED.value or status.get("message") != message:
            plan.events.append(Event("Normal", "Suspended", message))
    else:
        new.update(phase=Phase.ACTIVE.value, message="")
        ready = ("True", "Scheduled", "")
        if old_phase == Phase.PAUSED.value and spec is not None:
            plan.events.append(Event("Normal", "Resumed", _resumed_message(status)))
    new["conditions"] = _conditions(
        previous_conditions, ready, stalled, tracking.blocked, generation, now
    )
    upstreams_found = _upstreams_found(raw_spec, observed, namespace)
    if upstreams_found is not None:
        found, text = upstreams_found
        condition = _condition(
            previous_conditions,
            "True" if found else "False",
            "AllFound" if found else "UpstreamNotFound",
            text,
            generation,
            now,
            UPSTREAMS_FOUND,
        )
        new["conditions"].append(condition)
        old = next((c for c in previous_conditions if c.get("type") == UPSTREAMS_FOUND), None)
        if not found and (old is None or old.get("message") != text):
            plan.events.append(Event("Warning", "UpstreamNotFound", text))
    new["downstreams"] = sorted(observed.downstreams)

    new.update(tracking.updates)
    # Last: the whole status within its byte budget (long run messages go first).
    new = fit_status(new, status)
    plan.status_patch = {
        key: value for key, value in new.items() if _differs(status.get(key), value)
    }
    held_until = start_write_held(status.get("history"), plan.status_patch, now)
    if held_until is not None:
        plan.status_patch = {}
        plan.wake(held_until)

    # 5. Look again after the next fire time, to move nextRunTime on.
    if next_run is not None:
        plan.wake(next_run + REFRESH_DELAY)
    return plan


# Events every run posts, whatever happens to it; the rest say something went wrong.
ROUTINE_RUN_EVENTS = frozenset({Reason.RUN_STARTED, Reason.RUN_SUCCEEDED})


def posted(events: Sequence[Event], config: OperatorConfig) -> list[Event]:
    """The events to post: with run events set to failures, none of the routine ones."""
    if config.run_events == "all":
        return list(events)
    return [event for event in events if event.reason not in ROUTINE_RUN_EVENTS]


def after_created(observed: Observed, plan: Plan, created: Sequence[Manifest]) -> Observed:
    """What the operator sees once ``plan``'s Jobs exist and its status is written."""
    status = {**(observed.schedule.get("status") or {}), **plan.status_patch}
    return replace(
        observed,
        schedule={**observed.schedule, "status": status},
        jobs=[*observed.jobs, *created],
        pods={**observed.pods, **{job["metadata"]["name"]: [] for job in created}},
    )


def merged_with_created(first: Plan, second: Plan) -> Plan | None:
    """``first`` with what ``second`` (decided once first's Jobs were created) adds to
    its status and events: the new runs enter the history in the same status write
    as the fire time that started them. None when ``second`` wants to act otherwise
    (create, delete, apply): then ``first`` is carried out alone, and the next look
    decides the rest, as it always did."""
    if (
        second.create_jobs
        or second.delete_jobs
        or second.recorded
        or second.apply_cronjob is not None
        or second.delete_cronjob
        or second.delete_schedule
    ):
        return None
    return replace(
        first,
        status_patch={**first.status_patch, **second.status_patch},
        events=[*first.events, *second.events],
        finished=[*first.finished, *second.finished],
        missed=[*first.missed, *second.missed],
        requeue_at=second.requeue_at,
    )


def _paused_message(held: Suspension) -> str:
    if held.by_annotation:
        return (
            f"paused by {PAUSE_ANNOTATION}: {held.reason or 'no reason given'}; no runs until "
            "the annotation is removed"
        )
    return "suspended by spec.suspend: no scheduled runs until it is false"


def _resumed_message(status: Mapping[str, Any]) -> str:
    # The message of the Paused phase says which of the two was lifted.
    if str(status.get("message") or "").startswith(f"paused by {PAUSE_ANNOTATION}"):
        return f"{PAUSE_ANNOTATION} was removed: runs resume"
    return "spec.suspend is false: runs resume"


def _upstreams_found(
    raw_spec: Mapping[str, Any], observed: Observed, namespace: str
) -> tuple[bool, str] | None:
    """Whether every upstream of spec.after exists; None without upstreams, or before
    the operator's cache can tell."""
    names = [
        str(entry.get("schedule"))
        for entry in raw_spec.get("after") or []
        if isinstance(entry, Mapping) and entry.get("schedule")
    ]
    if not names or any(name not in observed.upstreams for name in names):
        return None
    missing = [name for name in names if observed.upstreams[name] is None]
    if not missing:
        return True, ""
    return False, (
        f"spec.after: no Schedule {', '.join(missing)} in namespace {namespace} (yet); runs "
        "after it start from its first run cycle that ends once it exists"
    )


def _completion_message(
    spec: ScheduleSpec, cadence: Cadence, scheduled_runs: int, created: datetime | None
) -> str:
    if spec.max_runs is not None and scheduled_runs >= spec.max_runs:
        return f"all {spec.max_runs} runs of maxRuns have run; the last run cycle succeeded"
    if cadence.kind is CadenceKind.AT and cadence.at is not None:
        if scheduled_runs:
            return "the one run at spec.at is done and succeeded"
        if created is not None and cadence.at <= created:
            return (
                f"at {to_rfc3339(cadence.at)} had already passed when the Schedule was "
                "created: it does not run"
            )
        return f"at {to_rfc3339(cadence.at)} passed while the Schedule was suspended: no run"
    if cadence.end is not None:
        return f"endTime {to_rfc3339(cadence.end)} has passed; the last run cycle succeeded"
    return "no fire time is left"


def _last_schedule_time(cronjob: Mapping[str, Any] | None) -> datetime | None:
    value = ((cronjob or {}).get("status") or {}).get("lastScheduleTime")
    try:
        return from_rfc3339(value) if value else None
    except ValueError:
        return None


def _created(schedule: Mapping[str, Any]) -> datetime | None:
    value = schedule["metadata"].get("creationTimestamp")
    try:
        return from_rfc3339(value) if value else None
    except ValueError:
        return None


def start_write_held(old_history: Any, patch: Mapping[str, Any], now: datetime) -> datetime | None:
    """Until when a status write may wait, if all it would write is runs' startTimes
    that are younger than START_WRITE_DELAY (None: write now)."""
    new_history = patch.get("history")
    if set(patch) != {"history"} or not isinstance(old_history, list):
        return None
    if not isinstance(new_history, list) or len(new_history) != len(old_history):
        return None
    starts: list[datetime] = []
    for old, new in zip(old_history, new_history, strict=True):
        if old == new:
            continue
        if not isinstance(old, Mapping) or not isinstance(new, Mapping) or old.get("startTime"):
            return None
        if {k: v for k, v in new.items() if k != "startTime"} != {
            k: v for k, v in old.items() if k != "startTime"
        }:
            return None
        try:
            starts.append(from_rfc3339(str(new.get("startTime"))))
        except ValueError:
            return None
    if not starts or min(starts) + START_WRITE_DELAY <= now:
        return None
    return min(starts) + START_WRITE_DELAY


def _differs(old: Any, new: Any) -> bool:
    if old is None and new is None:
        return False
    if isinstance(old, str) and isinstance(new, str) and old.endswith("Z") and new.endswith("Z"):
        try:
            return from_rfc3339(old) != from_rfc3339(new)
        except ValueError:
            return old != new
    return bool(old != new)


__all__ = [
    "Event",
    "Observed",
    "Plan",
    "Problem",
    "after_created",
    "decide",
    "merged_with_created",
    "posted",
]
