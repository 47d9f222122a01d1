"""A run's startTime alone waits for the run's end, or START_WRITE_DELAY, to be written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronfleet.clock import to_rfc3339
from cronfleet.reconcile import START_WRITE_DELAY, start_write_held

NOW = datetime(2026, 12, 1, 3, 0, 0, tzinfo=UTC)
PENDING = {"job": "sync-1", "trigger": "Scheduled", "attempt": 0, "reason": "", "message": ""}
DONE = {**PENDING, "job": "sync-0", "startTime": "2026-12-01T02:59:00Z", "result": "Succeeded"}


def started(seconds_ago: int) -> dict[str, object]:
    return {**PENDING, "startTime": to_rfc3339(NOW - timedelta(seconds=seconds_ago))}


def test_a_fresh_start_time_alone_waits_until_the_delay_is_over() -> None:
    held = start_write_held([PENDING, DONE], {"history": [started(2), DONE]}, NOW)
    assert held == NOW - timedelta(seconds=2) + START_WRITE_DELAY


def test_a_start_time_older_than_the_delay_is_written() -> None:
    assert start_write_held([PENDING], {"history": [started(11)]}, NOW) is None


def test_anything_else_in_the_write_sends_it_now() -> None:
    # The run's end, a new run, another field: the start time goes with them.
    finished = {**started(2), "result": "Succeeded", "completionTime": to_rfc3339(NOW)}
    assert start_write_held([PENDING], {"history": [finished]}, NOW) is None
    assert start_write_held([PENDING], {"history": [started(2), DONE]}, NOW) is None
    assert start_write_held([], {"history": [started(2)]}, NOW) is None
    assert start_write_held([PENDING], {"history": [started(2)], "scheduledRuns": 2}, NOW) is None
    assert start_write_held(None, {"history": [started(2)]}, NOW) is None
    # A start time that changes is not a first start: written now.
    moved = [{**PENDING, "startTime": to_rfc3339(NOW - timedelta(seconds=5))}]
    assert start_write_held(moved, {"history": [started(2)]}, NOW) is None
