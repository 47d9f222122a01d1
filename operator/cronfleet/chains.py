"""Run B after A: which upstream run cycles start runs of a downstream Schedule.

An upstream records each run cycle (a run and its retries) that ends in its
``status.cycles``, numbered. A downstream keeps, per upstream, the number of
the last cycle it acted on (``status.upstreams[].handledCycle``) and queues
one run for each later cycle that ends the way its ``on`` asks for. The run's
Job name comes from the upstream run, and the queue and the mark are written
in one status update, so a restart at any moment neither loses a run nor
starts it twice. Pure functions; the controller feeds them what it caches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cronfleet.clock import from_rfc3339
from cronfleet.models import (
    AfterOn,
    CycleRecord,
    QueuedRun,
    RunResult,
    RunTrigger,
    Upstream,
    UpstreamStatus,
)

# Ended cycles an upstream keeps in its status: far more than can end between
# two looks of a downstream, even across an operator restart.
CYCLES_KEPT = 10


@dataclass(frozen=True)
class UpstreamView:
    """An upstream Schedule as the controller's cache holds it."""

    uid: str
    cycles: Sequence[CycleRecord]  # newest first


@dataclass
class Followed:
    """What following the upstreams decided: new marks, runs to queue, events."""

    upstreams: list[UpstreamStatus] = field(default_factory=list)
    queued: list[QueuedRun] = field(default_factory=list)
    # (type, reason, message)
    events: list[tuple[str, str, str]] = field(default_factory=list)


def matches(on: AfterOn, result: RunResult) -> bool:
    if on is AfterOn.FINISHED:
        return True
    if on is AfterOn.SUCCEEDED:
        return result is RunResult.SUCCEEDED
    return result is RunResult.FAILED


def cycle_result(result: RunResult) -> RunResult:
    """How a cycle ended: a run that timed out failed."""
    return RunResult.FAILED if result is RunResult.TIMED_OUT else result


def valid_cycles(items: object) -> list[CycleRecord]:
    """Cycle entries that parse; one broken entry must not stop the others."""
    cycles = []
    for item in items if isinstance(items, list) else []:
        try:
            cycles.append(CycleRecord.model_validate(item))
        except ValueError:
            continue
    return cycles


def follow_upstreams(
    after: Sequence[Upstream],
    marks: Mapping[str, UpstreamStatus],
    views: Mapping[str, UpstreamView | None],
    since: datetime | None,
) -> Followed:
    """Queue a run for each upstream cycle not yet acted on that ends as ``on`` asks.

    ``views`` holds every upstream the controller knows about, None for one
    that does not exist; an upstream missing from ``views`` is not judged yet
    (the caches are still filling) and keeps its mark. ``since`` is when the
    downstream started following: cycles that ended before it do not start
    runs (None: only cycles that end from now on).
    """
    out = Followed()
    for entry in after:
        mark = marks.get(entry.schedule)
        if entry.schedule not in views:
            if mark is not None:
                out.upstreams.append(mark.model_copy(update={"on": entry.when}))
            continue
        view = views[entry.schedule]
        if view is None:
            kept = mark or UpstreamStatus(schedule=entry.schedule)
            out.upstreams.append(kept.model_copy(update={"on": entry.when, "found": False}))
            continue
        latest = view.cycles[0].number if view.cycles else 0
        if mark is None:
            # Never followed: only cycles that end after the downstream began to follow.
            handled = latest
            if since is not None:
                handled = max(
                    (c.number for c in view.cycles if _ended_by(c, since)),
                    default=min((c.number for c in view.cycles), default=1) - 1,
                )
        elif mark.uid != view.uid:
            # The upstream appeared (or was created again): each of its cycles is new.
            handled = 0
        else:
            handled = mark.handled_cycle
        status = UpstreamStatus(
            schedule=entry.schedule,
            on=entry.when,
            found=True,
            uid=view.uid,
            handled_cycle=max(handled, latest),
            last_run=mark.last_run if mark else None,
            last_result=mark.last_result if mark else None,
        )
        new = sorted((c for c in view.cycles if c.number > handled), key=lambda c: c.number)
        if new and mark is not None and mark.uid == view.uid and new[0].number > handled + 1:
            lost = new[0].number - handled - 1
            out.events.append(
                (
                    "Warning",
                    "UpstreamCyclesLost",
                    f"{lost} run cycle(s) of {entry.schedule} ended while they could not be acted "
                    f"on and are no longer kept (the last {CYCLES_KEPT} are): no run for them",
                )
            )
        for cycle in new:
            if not matches(entry.when, cycle.result):
                continue
            out.queued.append(
                QueuedRun(
                    trigger=RunTrigger.AFTER,
                    upstream=entry.schedule,
                    upstream_run=cycle.run,
                    upstream_result=cycle.result.value,
                    upstream_data=cycle.data or "",
                )
            )
            status = status.model_copy(
                update={"last_run": cycle.run, "last_result": cycle.result.value}
            )
            out.events.append(
                (
                    "Normal",
                    "AfterQueued",
                    f"A run is queued: {entry.schedule}'s run {cycle.run} ended "
                    f"{cycle.result.value} (on: {entry.when.value})",
                )
            )
        out.upstreams.append(status)
    return out


def _ended_by(cycle: CycleRecord, since: datetime) -> bool:
    if not cycle.finished_time:
        return True
    try:
        return from_rfc3339(cycle.finished_time) <= since
    except ValueError:
        return True


def find_cycle(start: str, upstreams_of: Callable[[str], Sequence[str]]) -> list[str] | None:
    """A path of spec.after edges from ``start`` back to it (``[a, b, a]``), or None.

    Depth-first over the namespace's Schedules; each is entered once, so the
    walk is linear in the edges even for a long chain.
    """
    path: list[str] = [start]
    entered: set[str] = {start}
    # One iterator of upstream names per Schedule on the path.
    pending = [iter(upstreams_of(start))]
    while pending:
        following = next(pending[-1], None)
        if following is None:
            pending.pop()
            path.pop()
            continue
        if following == start:
            return [*path, start]
        if following in entered:
            continue
        entered.add(following)
        path.append(following)
        pending.append(iter(upstreams_of(following)))
    return None


def describe_cycle(cycle: Sequence[str]) -> str:
    return " → ".join(cycle)
