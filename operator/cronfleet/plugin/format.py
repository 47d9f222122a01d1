"""Words and tables for the terminal, as kubectl prints them: pure functions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from cronfleet.plugin.views import FleetStats, HistoryPage, ScheduleRow

NONE = "<none>"
# A message longer than this is cut in tables; -o json/yaml has it whole.
MESSAGE_WIDTH = 60


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns three spaces apart, upper-case headers, as `kubectl get` prints."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [list(headers), *rows]
    ]
    return "\n".join(lines)


def duration(seconds: float | None) -> str:
    """``850ms``, ``42s``, ``3m12s``, ``5h4m``, ``2d3h``: the two largest units."""
    if seconds is None:
        return NONE
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    while units and units[0][0] == 0:
        units.pop(0)
    return "".join(f"{value}{unit}" for value, unit in units[:2] if value) or "0s"


def relative(moment: datetime | None, now: datetime) -> str:
    """``in 3h2m`` for the future, ``5m ago`` for the past, ``<none>`` for nothing."""
    if moment is None:
        return NONE
    seconds = (moment - now).total_seconds()
    if abs(seconds) < 1:
        return "now"
    return f"in {duration(seconds)}" if seconds > 0 else f"{duration(-seconds)} ago"


def percent(rate: float | None) -> str:
    return NONE if rate is None else f"{rate * 100:.0f}%"


def shorten(text: str, width: int = MESSAGE_WIDTH) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def local(moment: datetime, zone: str) -> str:
    """The moment on the wall clock of ``zone``, with its abbreviation and offset."""
    there = moment.astimezone(ZoneInfo(zone))
    return there.strftime("%Y-%m-%d %H:%M %Z (%z)").replace(" (+0000)", "")


def schedule_table(rows: Sequence[ScheduleRow], now: datetime, all_namespaces: bool) -> str:
    headers = ["NAME", "SCHEDULE", "PHASE", "LAST RESULT", "SUCCESS", "NEXT RUN", "RETRIES"]
    lines = []
    for row in rows:
        phase = row.phase
        if row.paused_reason is not None:
            phase = f"{phase} ({shorten(row.paused_reason, 30)})"
        line = [
            row.name,
            row.description,
            phase,
            row.last_result or NONE,
            percent(row.success_rate),
            relative(row.next_run, now),
            str(row.retries),
        ]
        lines.append([row.namespace, *line] if all_namespaces else line)
    return table(["NAMESPACE", *headers] if all_namespaces else headers, lines)


def row_document(row: ScheduleRow) -> dict[str, Any]:
    """A row for -o json/yaml: camelCase keys, RFC 3339 times, nulls kept."""
    return {
        "namespace": row.namespace,
        "name": row.name,
        "schedule": row.description,
        "phase": row.phase,
        "lastResult": row.last_result,
        "successRate": row.success_rate,
        "nextRunTime": utc(row.next_run) if row.next_run else None,
        "retryCount": row.retries,
        "suspended": row.suspended,
        "pausedReason": row.paused_reason,
    }


def history_table(page: HistoryPage) -> str:
    headers = ["JOB", "TRIGGER", "ATTEMPT", "STARTED", "DURATION", "RESULT", "EXIT", "MESSAGE"]
    lines = [
        [
            str(entry.get("job", "")),
            str(entry.get("trigger") or "Scheduled"),
            str(entry.get("attempt") or 0),
            str(entry.get("startTime") or NONE),
            duration(entry.get("durationSeconds")),
            str(entry.get("result") or "Running"),
            NONE if entry.get("exitCode") is None else str(entry["exitCode"]),
            shorten(str(entry.get("message") or entry.get("reason") or "")),
        ]
        for entry in page.entries
    ]
    return table(headers, lines)


def history_footer(page: HistoryPage, failed_only: bool) -> str:
    runs = "failed runs" if failed_only else "runs"
    footer = f"page {page.page} of {page.pages} ({page.total} {runs} kept in the status)"
    if page.page < page.pages:
        footer += f"; older: --page {page.page + 1}"
    return footer


def history_document(page: HistoryPage) -> dict[str, Any]:
    return {
        "page": page.page,
        "pages": page.pages,
        "total": page.total,
        "items": [dict(entry) for entry in page.entries],
    }


def next_table(fires: Sequence[datetime], zone: str, now: datetime) -> str:
    headers = [f"TIME ({zone})", "UTC", "IN"]
    lines = [
        [local(fire, zone), utc(fire), relative(fire, now).removeprefix("in ")] for fire in fires
    ]
    return table(headers, lines)


def stats_table(stats: FleetStats) -> str:
    headers = ["SCHEDULES", "ENABLED", "RUNS", "SUCCEEDED", "FAILED", "LAST 24H"]
    figures = [
        stats.schedules,
        stats.enabled,
        stats.runs,
        stats.succeeded,
        stats.failed,
        stats.last_24h,
    ]
    return table(headers, [[str(figure) for figure in figures]])


def stats_document(stats: FleetStats) -> dict[str, int]:
    return {
        "schedules": stats.schedules,
        "enabled": stats.enabled,
        "runs": stats.runs,
        "succeeded": stats.succeeded,
        "failed": stats.failed,
        "last24h": stats.last_24h,
    }


def document(value: Any, output: str) -> str:
    """``-o json`` or ``-o yaml`` of a plain value."""
    if output == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip("\n")


def run_outcome(entry: Mapping[str, Any]) -> str:
    """One line for a finished run: ``sync-m-1f3a Succeeded in 2s: synced 12 orders``."""
    line = f"{entry.get('job')} {entry.get('result')}"
    if entry.get("durationSeconds") is not None:
        line += f" in {duration(entry['durationSeconds'])}"
    if entry.get("exitCode") is not None:
        line += f" (exit code {entry['exitCode']})"
    message = str(entry.get("message") or "").strip()
    return f"{line}: {message}" if message else line
