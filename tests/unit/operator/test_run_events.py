"""Run events: every run's, or only those that say something went wrong."""

from __future__ import annotations

import pytest

from cronfleet.config import OperatorConfig
from cronfleet.reconcile import posted
from cronfleet.tracking import Event

EVENTS = [
    Event("Normal", "RunStarted", "Run sync-1 started (Scheduled, attempt 0)"),
    Event("Normal", "RunSucceeded", "Run sync-1 succeeded in 1s"),
    Event("Warning", "RunFailed", "Run sync-2 failed"),
    Event("Warning", "MissedRun", "missed"),
    Event("Normal", "Resumed", "runs resume"),
]


def test_all_run_events_by_default() -> None:
    assert OperatorConfig.from_env({}).run_events == "all"
    assert posted(EVENTS, OperatorConfig()) == EVENTS


def test_failures_leaves_out_only_the_events_every_run_posts() -> None:
    config = OperatorConfig.from_env({"CRONFLEET_RUN_EVENTS": "Failures"})
    assert [event.reason for event in posted(EVENTS, config)] == [
        "RunFailed",
        "MissedRun",
        "Resumed",
    ]


def test_an_unknown_setting_stops_the_operator_and_says_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"CRONFLEET_RUN_EVENTS is 'some'.*'all'.*'failures'"):
        OperatorConfig.from_env({"CRONFLEET_RUN_EVENTS": "some"})
