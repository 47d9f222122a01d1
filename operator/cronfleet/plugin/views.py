"""What the plugin shows, computed purely from Schedule objects as the API returns them.

The schedule in words and the fire times come from the operator's own
``cronfleet.cadence``, so the CLI, the dashboard and the status agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cronfleet.cadence import Cadence, spec_cadence
from cronfleet.clock import from_rfc3339
from cronfleet.models import RunResult, ScheduleSpec
from cronfleet.pausing import suspension_of

RUNNING = "Running"
# What --failed keeps: runs that did not succeed on their own (cancelled ones were stopped).
FAILED_RESULTS = frozenset({RunResult.FAILED.value, RunResult.TIMED_OUT.value})
LAST_24H = timedelta(hours=24)


@dataclass(frozen=True)
class ScheduleRow:
    namespace: str
    name: str
    description: str
    phase: str
    last_result: str | None
    success_rate: float | None
    next_run: datetime | None
    retries: int
    suspended: bool
    paused_reason: str | None


@dataclass(frozen=True)
class FleetStats:
    schedules: int
    enabled: int
    runs: int
    succeeded: int
    failed: int
    last_24h: int


@dataclass(frozen=True)
class HistoryPage:
    entries: list[Mapping[str, Any]]
    page: int
    pages: int
    total: int


def _status(schedule: Mapping[str, Any]) -> Mapping[str, Any]:
    return schedule.get("status") or {}


def moment(text: Any) -> datetime | None:
    """An RFC 3339 time from an object's field, or None when it is missing or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return from_rfc3339(text)
    except ValueError:
        return None


def _created(schedule: Mapping[str, Any]) -> datetime | None:
    return moment((schedule.get("metadata") or {}).get("creationTimestamp"))


def cadence(schedule: Mapping[str, Any]) -> Cadence:
    """The Schedule's cadence; ValueError (naming the problem) for a spec that does not parse."""
    spec = ScheduleSpec.model_validate(schedule.get("spec") or {})
    return spec_cadence(spec, _created(schedule))


def description(schedule: Mapping[str, Any]) -> str:
    """The schedule in words, as the operator writes it; the status's copy for an invalid spec."""
    try:
        return cadence(schedule).describe()
    except ValueError:
        return str(_status(schedule).get("scheduleDescription") or "(invalid spec)")


def _counts(schedule: Mapping[str, Any]) -> Mapping[str, Any]:
    return _status(schedule).get("counts") or {}


def success_rate(schedule: Mapping[str, Any]) -> float | None:
    """Succeeded over succeeded plus failed runs; None before any run finished."""
    counts = _counts(schedule)
    succeeded, failed = int(counts.get("succeeded") or 0), int(counts.get("failed") or 0)
    if succeeded + failed == 0:
        return None
    return succeeded / (succeeded + failed)


def last_result(schedule: Mapping[str, Any]) -> str | None:
    """The newest run's result, ``Running`` while it runs, None before the first run."""
    history = _status(schedule).get("history") or []
    if not history:
        return None
    return str(history[0].get("result") or RUNNING)


def schedule_row(schedule: Mapping[str, Any]) -> ScheduleRow:
    metadata = schedule.get("metadata") or {}
    status = _status(schedule)
    held = suspension_of(schedule)
    return ScheduleRow(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        description=description(schedule),
        phase=str(status.get("phase") or "Pending"),
        last_result=last_result(schedule),
        success_rate=success_rate(schedule),
        next_run=moment(status.get("nextRunTime")),
        retries=int(status.get("retryCount") or 0),
        suspended=held is not None,
        paused_reason=held.reason if held is not None and held.by_annotation else None,
    )


def fleet_stats(schedules: Iterable[Mapping[str, Any]], now: datetime) -> FleetStats:
    """The six figures: Schedules, enabled ones, runs, succeeded, failed, runs started in 24 h.

    Runs count every finished run (succeeded, failed and cancelled); the last
    24 h count the runs in the kept history that started within a day of now.
    """
    total = enabled = runs = succeeded = failed = recent = 0
    since = now - LAST_24H
    for schedule in schedules:
        total += 1
        if suspension_of(schedule) is None:
            enabled += 1
        counts = _counts(schedule)
        ok, bad = int(counts.get("succeeded") or 0), int(counts.get("failed") or 0)
        succeeded += ok
        failed += bad
        runs += ok + bad + int(counts.get("cancelled") or 0)
        for entry in _status(schedule).get("history") or []:
            started = moment(entry.get("startTime"))
            if started is not None and since <= started <= now:
                recent += 1
    return FleetStats(total, enabled, runs, succeeded, failed, recent)


def next_fire_times(schedule: Mapping[str, Any], count: int, now: datetime) -> list[datetime]:
    """The next ``count`` fire times after ``now``, in UTC; fewer when the cadence ends."""
    if count < 0:
        raise ValueError(f"count {count} is negative: ask for 0 or more fire times")
    fires: list[datetime] = []
    moment = now
    when = cadence(schedule)
    while len(fires) < count:
        fire = when.next_after(moment)
        if fire is None:
            break
        fires.append(fire.astimezone(UTC))
        moment = fire
    return fires


def time_zone(schedule: Mapping[str, Any]) -> str:
    return str((schedule.get("spec") or {}).get("timeZone") or "UTC")


def history_page(
    schedule: Mapping[str, Any], page: int, size: int, failed_only: bool = False
) -> HistoryPage:
    """Page ``page`` (from 1) of ``size`` runs, newest first; only failed or timed-out if asked."""
    if page < 1:
        raise ValueError(f"page {page} is not allowed: pages count from 1")
    if size < 1:
        raise ValueError(f"page size {size} is not allowed: at least 1")
    entries: list[Mapping[str, Any]] = list(_status(schedule).get("history") or [])
    if failed_only:
        entries = [e for e in entries if e.get("result") in FAILED_RESULTS]
    total = len(entries)
    pages = max(1, math.ceil(total / size))
    start = (page - 1) * size
    return HistoryPage(entries[start : start + size], page, pages, total)


__all__ = [
    "FleetStats",
    "HistoryPage",
    "ScheduleRow",
    "cadence",
    "description",
    "fleet_stats",
    "history_page",
    "last_result",
    "next_fire_times",
    "schedule_row",
    "success_rate",
    "time_zone",
]
