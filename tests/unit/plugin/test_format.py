"""The words and tables `kubectl cronfleet` prints."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from cronfleet.plugin import format as fmt
from cronfleet.plugin.views import FleetStats, HistoryPage, ScheduleRow

NOW = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)


def row(**changes: object) -> ScheduleRow:
    values: dict[str, object] = {
        "namespace": "acme",
        "name": "sync",
        "description": "At 02:00 (Asia/Kolkata)",
        "phase": "Active",
        "last_result": "Succeeded",
        "success_rate": 0.875,
        "next_run": NOW + timedelta(hours=23, minutes=30),
        "retries": 0,
        "suspended": False,
        "paused_reason": None,
    }
    values.update(changes)
    return ScheduleRow(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, "<none>"),
        (0.25, "250ms"),
        (0, "0ms"),
        (1, "1s"),
        (42.4, "42s"),
        (192, "3m12s"),
        (3600, "1h"),
        (5 * 3600 + 4 * 60 + 59, "5h4m"),
        (2 * 86400 + 3 * 3600 + 5, "2d3h"),
    ],
)
def test_durations_show_the_two_largest_units(seconds: float | None, words: str) -> None:
    assert fmt.duration(seconds) == words


def test_relative_times() -> None:
    assert fmt.relative(NOW + timedelta(minutes=90), NOW) == "in 1h30m"
    assert fmt.relative(NOW - timedelta(seconds=5), NOW) == "5s ago"
    assert fmt.relative(NOW, NOW) == "now"
    assert fmt.relative(None, NOW) == "<none>"


def test_the_table_lines_up_like_kubectl_get() -> None:
    text = fmt.schedule_table(
        [row(), row(name="nightly-export", last_result=None, success_rate=None, next_run=None)],
        NOW,
        all_namespaces=False,
    )
    assert text.splitlines() == [
        "NAME             SCHEDULE                  PHASE    LAST RESULT   SUCCESS   "
        "NEXT RUN    RETRIES",
        "sync             At 02:00 (Asia/Kolkata)   Active   Succeeded     88%       in 23h30m   0",
        "nightly-export   At 02:00 (Asia/Kolkata)   Active   <none>        <none>    <none>      0",
    ]


def test_all_namespaces_adds_the_namespace_and_a_pause_shows_its_reason() -> None:
    text = fmt.schedule_table(
        [row(phase="Paused", suspended=True, paused_reason="db migration", next_run=None)],
        NOW,
        all_namespaces=True,
    )
    header, line = text.splitlines()
    assert header.startswith("NAMESPACE   NAME")
    assert line.split("   ")[0] == "acme"
    assert "Paused (db migration)" in line


def test_rows_as_documents_keep_times_machine_readable() -> None:
    document = fmt.row_document(row())
    assert document["nextRunTime"] == "2026-12-01T20:30:00Z"
    assert document["successRate"] == 0.875
    parsed = json.loads(fmt.document({"items": [document]}, "json"))
    assert parsed["items"][0]["name"] == "sync"
    assert yaml.safe_load(fmt.document({"items": [document]}, "yaml")) == parsed


def test_history_rows_and_the_footer() -> None:
    entries: list[Mapping[str, Any]] = [
        {
            "job": "sync-29400000",
            "trigger": "Scheduled",
            "attempt": 0,
            "startTime": "2026-11-30T20:30:01Z",
            "durationSeconds": 3.2,
            "result": "Failed",
            "exitCode": 1,
            "message": "upstream answered 503\nafter 3 tries " + "x" * 80,
        },
        {"job": "sync-m-1f3a", "trigger": "Manual", "startTime": "2026-11-30T20:40:00Z"},
    ]
    page = HistoryPage(entries, page=1, pages=3, total=45)
    lines = fmt.history_table(page).splitlines()
    assert lines[0].split() == [
        "JOB",
        "TRIGGER",
        "ATTEMPT",
        "STARTED",
        "DURATION",
        "RESULT",
        "EXIT",
        "MESSAGE",
    ]
    assert lines[1].split()[:7] == [
        "sync-29400000",
        "Scheduled",
        "0",
        "2026-11-30T20:30:01Z",
        "3s",
        "Failed",
        "1",
    ]
    # One line per run: newlines folded, long messages cut.
    assert "upstream answered 503 after 3 tries" in lines[1] and lines[1].endswith("…")
    assert lines[2].split()[4:7] == ["<none>", "Running", "<none>"]
    assert fmt.history_footer(page, False) == (
        "page 1 of 3 (45 runs kept in the status); older: --page 2"
    )
    last = HistoryPage([], page=3, pages=3, total=45)
    assert fmt.history_footer(last, True) == "page 3 of 3 (45 failed runs kept in the status)"


def test_next_fire_times_in_the_zone_and_utc() -> None:
    fires = [datetime(2026, 12, 1, 20, 30, tzinfo=UTC), datetime(2026, 12, 2, 20, 30, tzinfo=UTC)]
    lines = fmt.next_table(fires, "Asia/Kolkata", NOW).splitlines()
    assert lines[0].split() == ["TIME", "(Asia/Kolkata)", "UTC", "IN"]
    assert lines[1].startswith("2026-12-02 02:00 IST (+0530)   2026-12-01T20:30:00Z   23h30m")
    utc_only = fmt.next_table(fires[:1], "UTC", NOW).splitlines()[1]
    assert utc_only.startswith("2026-12-01 20:30 UTC   2026-12-01T20:30:00Z")


def test_the_six_figures() -> None:
    stats = FleetStats(schedules=5, enabled=4, runs=120, succeeded=110, failed=8, last_24h=12)
    assert fmt.stats_table(stats).splitlines() == [
        "SCHEDULES   ENABLED   RUNS   SUCCEEDED   FAILED   LAST 24H",
        "5           4         120    110         8        12",
    ]
    assert fmt.stats_document(stats)["last24h"] == 12


def test_a_finished_run_in_one_line() -> None:
    entry = {"job": "sync-m-1", "result": "Failed", "durationSeconds": 2.0, "exitCode": 1}
    assert (
        fmt.run_outcome({**entry, "message": "boom"}) == "sync-m-1 Failed in 2s (exit code 1): boom"
    )
    assert fmt.run_outcome({"job": "sync-m-2", "result": "Succeeded"}) == "sync-m-2 Succeeded"
