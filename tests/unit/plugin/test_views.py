"""What the plugin shows: rows, the six figures, fire times and history pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cronfleet.plugin.views import (
    fleet_stats,
    history_page,
    next_fire_times,
    schedule_row,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "landed-0.1-failing-schedule.json"
NOW = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)


def schedule(
    name: str = "sync",
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "acme",
            "annotations": annotations or {},
            "creationTimestamp": "2026-11-01T00:00:00Z",
        },
        "spec": spec or {"cron": "0 2 * * *", "task": "sleep"},
        "status": status or {},
    }


def runs(*results: str | None, start: str = "2026-11-24T09:00:00Z") -> list[dict[str, Any]]:
    return [
        {"job": f"sync-{i}", "result": result, "startTime": start}
        for i, result in enumerate(results)
    ]


def test_a_row_of_a_status_written_by_version_0_1() -> None:
    row = schedule_row(json.loads(FIXTURE.read_text()))
    assert (row.namespace, row.name) == ("acme", "sync")
    assert row.description == "Every hour (UTC)"
    assert row.phase == "Active"
    assert row.last_result == "Failed"
    assert row.success_rate == pytest.approx(0.8)
    assert row.next_run == datetime(2026, 11, 24, 11, tzinfo=UTC)
    assert row.retries == 1
    assert (row.suspended, row.paused_reason) == (False, None)


def test_the_description_is_the_operators_in_the_schedules_zone() -> None:
    row = schedule_row(
        schedule(spec={"cron": "30 2 * * *", "timeZone": "Asia/Kolkata", "task": "x"})
    )
    assert row.description == "At 02:30 (Asia/Kolkata)"


def test_an_invalid_spec_shows_the_status_description() -> None:
    row = schedule_row(
        schedule(spec={"cron": "61 * * * *", "task": "x"}, status={"scheduleDescription": "old"})
    )
    assert row.description == "old"


def test_a_new_schedule_has_no_result_rate_or_phase_yet() -> None:
    row = schedule_row(schedule())
    assert (row.last_result, row.success_rate, row.next_run, row.phase) == (
        None,
        None,
        None,
        "Pending",
    )


def test_a_running_newest_run_shows_running() -> None:
    row = schedule_row(schedule(status={"history": runs(None, "Succeeded")}))
    assert row.last_result == "Running"


def test_the_pause_annotation_and_spec_suspend_both_suspend() -> None:
    paused = schedule_row(schedule(annotations={"cronfleet.io/pause": "db migration"}))
    assert (paused.suspended, paused.paused_reason) == (True, "db migration")
    suspended = schedule_row(schedule(spec={"cron": "0 2 * * *", "task": "x", "suspend": True}))
    assert (suspended.suspended, suspended.paused_reason) == (True, None)


def test_the_six_figures() -> None:
    recent = "2026-11-24T01:00:00Z"
    old = "2026-11-22T01:00:00Z"
    fleet = [
        schedule(
            "a",
            status={
                "counts": {"succeeded": 5, "failed": 2, "cancelled": 1},
                "history": runs("Succeeded", "Failed", start=recent) + runs("Succeeded", start=old),
            },
        ),
        schedule("b", annotations={"cronfleet.io/pause": ""}, status={"counts": {"failed": 3}}),
        schedule("c", spec={"cron": "0 2 * * *", "task": "x", "suspend": True}),
        schedule("d"),
    ]
    stats = fleet_stats(fleet, NOW)
    assert (stats.schedules, stats.enabled) == (4, 2)
    assert (stats.runs, stats.succeeded, stats.failed) == (11, 5, 5)
    assert stats.last_24h == 2


def test_next_fire_times_follow_the_schedules_zone_across_daylight_saving() -> None:
    # New York leaves daylight saving on 1 November 2026: 02:00 local moves from 06:00 to 07:00 UTC.
    ny = schedule(spec={"cron": "0 2 * * *", "timeZone": "America/New_York", "task": "x"})
    fires = next_fire_times(ny, 3, datetime(2026, 10, 30, 12, tzinfo=UTC))
    assert [f.isoformat() for f in fires] == [
        "2026-10-31T06:00:00+00:00",
        "2026-11-01T07:00:00+00:00",
        "2026-11-02T07:00:00+00:00",
    ]
    assert all(f.astimezone(ZoneInfo("America/New_York")).hour == 2 for f in fires)


def test_next_fire_times_of_intervals_one_time_and_manual_schedules() -> None:
    every = schedule(spec={"every": "90m", "task": "x", "startTime": "2026-11-24T10:00:00Z"})
    assert [f.strftime("%H:%M") for f in next_fire_times(every, 2, NOW)] == ["11:30", "13:00"]
    once = schedule(spec={"at": "2026-12-01T00:00:00Z", "task": "x"})
    assert next_fire_times(once, 5, NOW) == [datetime(2026, 12, 1, tzinfo=UTC)]
    assert next_fire_times(schedule(spec={"task": "x"}), 5, NOW) == []


def test_next_fire_times_of_an_invalid_spec_name_the_problem() -> None:
    with pytest.raises(ValueError, match="61"):
        next_fire_times(schedule(spec={"cron": "61 * * * *", "task": "x"}), 1, NOW)


def test_history_pages_newest_first() -> None:
    status = {"history": runs("Succeeded", "Failed", "TimedOut", "Cancelled", "Succeeded")}
    first = history_page(schedule(status=status), page=1, size=2)
    assert [e["job"] for e in first.entries] == ["sync-0", "sync-1"]
    assert (first.page, first.pages, first.total) == (1, 3, 5)
    last = history_page(schedule(status=status), page=3, size=2)
    assert [e["job"] for e in last.entries] == ["sync-4"]
    assert history_page(schedule(status=status), page=4, size=2).entries == []


def test_failed_only_keeps_failed_and_timed_out_runs() -> None:
    status = {"history": runs("Succeeded", "Failed", "TimedOut", "Cancelled", None)}
    page = history_page(schedule(status=status), page=1, size=10, failed_only=True)
    assert [e["job"] for e in page.entries] == ["sync-1", "sync-2"]
    assert (page.pages, page.total) == (1, 2)


def test_an_empty_history_is_one_empty_page() -> None:
    page = history_page(schedule(), page=1, size=10)
    assert (page.entries, page.page, page.pages, page.total) == ([], 1, 1, 0)


@pytest.mark.parametrize(("page", "size", "words"), [(0, 10, "page 0"), (1, 0, "size 0")])
def test_bad_pages_are_refused(page: int, size: int, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        history_page(schedule(), page=page, size=size)
