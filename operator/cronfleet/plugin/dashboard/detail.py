"""The Schedule page: what it shows of one Schedule, and the actions it offers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronfleet.plugin import actions, views
from cronfleet.plugin.dashboard.display import relative, stamp

NEXT_RUNS = 5
HISTORY_PAGE_SIZE = 10
EVENTS_SHOWN = 20
SUMMARY_LENGTH = 80


class Action(StrEnum):
    RUN_NOW = "run-now"
    PAUSE = "pause"
    RESUME = "resume"
    RESET = "reset"


LABELS = {
    Action.RUN_NOW: "Run now",
    Action.PAUSE: "Pause",
    Action.RESUME: "Resume",
    Action.RESET: "Reset",
}
QUESTIONS = {
    Action.RUN_NOW: "Start a run of {ref} now, outside its schedule?",
    Action.PAUSE: "Pause {ref}? No scheduled run starts until it is resumed.",
    Action.RESUME: "Resume {ref}? Its scheduled runs start again.",
    Action.RESET: "Reset {ref}? This clears Failed, the retry count and consecutive failures.",
}
DONE = {
    Action.RUN_NOW: "Run requested (token {token}): it appears in the history when it starts.",
    Action.PAUSE: "Paused: {ref} starts no scheduled run until it is resumed.",
    Action.RESUME: "Resumed: {ref} runs on its schedule again.",
    Action.RESET: "Reset requested (token {token}).",
}


def parse_action(text: str) -> Action:
    try:
        return Action(text)
    except ValueError:
        allowed = ", ".join(action.value for action in Action)
        raise ValueError(f"action {text!r} is not allowed: use one of {allowed}") from None


@dataclass(frozen=True)
class ActionRequest:
    action: Action
    patch: dict[str, Any]
    token: str | None


def action_request(action: Action, now: datetime, reason: str = "") -> ActionRequest:
    """The annotation patch an action sends (never ``spec``), with its run or reset token."""
    if action is Action.RUN_NOW:
        token = actions.new_token(now)
        return ActionRequest(action, actions.run_now_patch(token), token)
    if action is Action.RESET:
        token = actions.new_token(now)
        return ActionRequest(action, actions.reset_patch(token), token)
    if action is Action.PAUSE:
        return ActionRequest(
            action, actions.pause_patch(reason or "paused from the dashboard"), None
        )
    return ActionRequest(action, actions.resume_patch(), None)


def done_message(request: ActionRequest, namespace: str, name: str) -> str:
    return DONE[request.action].format(ref=f"{namespace}/{name}", token=request.token)


def question(action: Action, namespace: str, name: str) -> str:
    return QUESTIONS[action].format(ref=f"{namespace}/{name}")


@dataclass(frozen=True)
class ActionButton:
    action: Action
    label: str
    enabled: bool
    reason: str


def action_buttons(schedule: Mapping[str, Any], permission: tuple[bool, str]) -> list[ActionButton]:
    """Every action, disabled with the reason when RBAC or the Schedule's state rules it out."""
    may_patch, refusal = permission
    row = views.schedule_row(schedule)
    paused_here = row.paused_reason is not None
    buttons = []
    for action in Action:
        reason = "" if may_patch else refusal
        if may_patch and action is Action.PAUSE and row.suspended:
            reason = (
                "already paused" if paused_here else "suspended by spec.suspend in its manifest"
            )
        if may_patch and action is Action.RESUME and not paused_here:
            reason = (
                "suspended by spec.suspend: change it in its manifest"
                if row.suspended
                else "not paused"
            )
        buttons.append(ActionButton(action, LABELS[action], not reason, reason))
    return buttons


@dataclass(frozen=True)
class NextRun:
    local: str
    utc: str
    relative: str


@dataclass(frozen=True)
class HistoryEntry:
    job: str
    trigger: str
    attempt: int
    started: str
    duration: str
    result: str
    exit_code: str
    summary: str
    message: str


@dataclass(frozen=True)
class EventView:
    type: str
    reason: str
    message: str
    count: int
    seen: str


@dataclass(frozen=True)
class ScheduleView:
    namespace: str
    name: str
    resource_version: str
    row: views.ScheduleRow
    message: str
    zone: str
    facts: list[tuple[str, str]]
    next_runs: list[NextRun]
    next_runs_error: str
    history: views.HistoryPage
    entries: list[HistoryEntry]
    failed_only: bool
    events: list[EventView]
    events_error: str
    buttons: list[ActionButton]

    @property
    def href(self) -> str:
        return f"/schedules/{self.namespace}/{self.name}"


def zone_of(schedule: Mapping[str, Any]) -> ZoneInfo:
    try:
        return ZoneInfo(views.time_zone(schedule))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _in_zone(text: Any, zone: ZoneInfo) -> str:
    moment = views.moment(text)
    return stamp(moment.astimezone(zone) if moment else None)


def summary(message: str) -> str:
    """The first line of a run's message, cut to fit a table cell; the rest expands."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return first if len(first) <= SUMMARY_LENGTH else first[: SUMMARY_LENGTH - 1] + "…"


def history_entry(entry: Mapping[str, Any], zone: ZoneInfo) -> HistoryEntry:
    duration = entry.get("durationSeconds")
    exit_code = entry.get("exitCode")
    message = str(entry.get("message") or "")
    return HistoryEntry(
        job=str(entry.get("job") or ""),
        trigger=str(entry.get("trigger") or ""),
        attempt=int(entry.get("attempt") or 0),
        started=_in_zone(entry.get("startTime") or entry.get("scheduledTime"), zone),
        duration="—" if duration is None else f"{float(duration):.1f}s",
        result=str(entry.get("result") or views.RUNNING),
        exit_code="—" if exit_code is None else str(exit_code),
        summary=summary(message),
        message=message,
    )


def event_time(event: Mapping[str, Any]) -> datetime | None:
    metadata = event.get("metadata") or {}
    for text in (
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        metadata.get("creationTimestamp"),
    ):
        moment = views.moment(text)
        if moment is not None:
            return moment
    return None


def event_views(events: Iterable[Mapping[str, Any]], now: datetime) -> list[EventView]:
    """Newest first, at most ``EVENTS_SHOWN``, as ``kubectl describe`` lists them."""
    dated = sorted(
        events, key=lambda e: event_time(e) or datetime.min.replace(tzinfo=now.tzinfo), reverse=True
    )
    return [
        EventView(
            type=str(event.get("type") or ""),
            reason=str(event.get("reason") or ""),
            message=str(event.get("message") or event.get("note") or ""),
            count=int(event.get("count") or 1),
            seen=relative(event_time(event), now),
        )
        for event in dated[:EVENTS_SHOWN]
    ]


def next_runs(schedule: Mapping[str, Any], now: datetime) -> tuple[list[NextRun], str]:
    """The next fire times in the Schedule's zone and UTC, or why there are none."""
    if views.schedule_row(schedule).suspended:
        return [], "none while paused"
    try:
        fires = views.next_fire_times(schedule, NEXT_RUNS, now)
    except ValueError as error:
        return [], str(error)
    zone = zone_of(schedule)
    runs = [
        NextRun(stamp(fire.astimezone(zone)), stamp(fire), relative(fire, now)) for fire in fires
    ]
    return runs, "" if runs else "none: the cadence has ended"


def last_run(schedule: Mapping[str, Any]) -> str | None:
    """When the newest run started: status.lastRunTime counts scheduled runs, the history all."""
    status = schedule.get("status") or {}
    history = status.get("history") or []
    candidates = [status.get("lastRunTime"), *(entry.get("startTime") for entry in history[:1])]
    moments = [when for when in map(views.moment, candidates) if when is not None]
    return max(moments).isoformat() if moments else None


def facts(schedule: Mapping[str, Any], zone: ZoneInfo) -> list[tuple[str, str]]:
    spec = schedule.get("spec") or {}
    status = schedule.get("status") or {}
    counts = status.get("counts") or {}
    return [
        ("Task", str(spec.get("task") or "—")),
        ("Time zone", zone.key),
        ("Last run", _in_zone(last_run(schedule), zone)),
        ("Last success", _in_zone(status.get("lastSuccessfulTime"), zone)),
        ("Last failure", _in_zone(status.get("lastFailureTime"), zone)),
        ("Next retry", _in_zone(status.get("nextRetryTime"), zone)),
        ("Consecutive failures", str(status.get("consecutiveFailures") or 0)),
        ("Succeeded / failed", f"{counts.get('succeeded') or 0} / {counts.get('failed') or 0}"),
        ("CronJob", str(status.get("cronJob") or "—")),
    ]


def schedule_view(
    schedule: Mapping[str, Any],
    events: Iterable[Mapping[str, Any]],
    events_error: str,
    permission: tuple[bool, str],
    now: datetime,
    page: int = 1,
    failed_only: bool = False,
) -> ScheduleView:
    metadata = schedule.get("metadata") or {}
    status = schedule.get("status") or {}
    zone = zone_of(schedule)
    history = views.history_page(schedule, 1, HISTORY_PAGE_SIZE, failed_only)
    # A page past the end (the history got shorter) shows the last one.
    history = views.history_page(schedule, min(page, history.pages), HISTORY_PAGE_SIZE, failed_only)
    upcoming, upcoming_error = next_runs(schedule, now)
    return ScheduleView(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        resource_version=str(metadata.get("resourceVersion") or ""),
        row=views.schedule_row(schedule),
        message=str(status.get("message") or ""),
        zone=zone.key,
        facts=facts(schedule, zone),
        next_runs=upcoming,
        next_runs_error=upcoming_error,
        history=history,
        entries=[history_entry(entry, zone) for entry in history.entries],
        failed_only=failed_only,
        events=event_views(events, now),
        events_error=events_error,
        buttons=action_buttons(schedule, permission),
    )


def parse_page(text: str | None) -> int:
    """``?page=`` of the history: a whole number from 1; ValueError naming it otherwise."""
    if text is None or text == "":
        return 1
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"page {text!r} is not allowed: a whole number from 1")
    return int(text)


__all__ = [
    "Action",
    "ActionButton",
    "ActionRequest",
    "EventView",
    "HistoryEntry",
    "NextRun",
    "ScheduleView",
    "action_buttons",
    "action_request",
    "done_message",
    "event_views",
    "history_entry",
    "next_runs",
    "parse_action",
    "parse_page",
    "question",
    "schedule_view",
    "summary",
]
