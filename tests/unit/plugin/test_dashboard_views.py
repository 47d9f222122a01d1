"""What the dashboard's pages show: the filtered table, the cards, the Schedule page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronfleet.plugin.dashboard import detail, display, fleet

NOW = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)


def schedule(
    name: str,
    namespace: str = "acme",
    *,
    phase: str | None = "Active",
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    body_status = {"phase": phase, **(status or {})} if phase else dict(status or {})
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": "7",
            "annotations": annotations or {},
            "creationTimestamp": "2026-11-01T00:00:00Z",
        },
        "spec": spec or {"cron": "0 2 * * *", "task": "command"},
        "status": body_status,
    }


def run(started: str, result: str | None = "Succeeded", message: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "job": f"sync-{started[11:13]}",
        "trigger": "Scheduled",
        "attempt": 0,
        "startTime": started,
        "durationSeconds": 2.5,
        "exitCode": 0 if result == "Succeeded" else 1,
        "message": message,
    }
    if result is not None:
        entry["result"] = result
    return entry


FLEET = [
    schedule("shopify-sync", "tenant-acme"),
    schedule("nightly-cleanup", "ops", phase="Failed"),
    schedule("heartbeat", "ops", annotations={"cronfleet.io/pause": "maintenance"}, phase="Paused"),
    schedule("Reindex", "kb", phase=None),
]


# -- the table ---------------------------------------------------------------------------


def test_the_filter_keeps_a_namespace_a_phase_and_names_containing_the_search() -> None:
    def names(wanted: fleet.FleetFilter) -> list[str]:
        return [s["metadata"]["name"] for s in fleet.select(FLEET, wanted)]

    assert names(fleet.FleetFilter()) == ["Reindex", "heartbeat", "nightly-cleanup", "shopify-sync"]
    assert names(fleet.FleetFilter(namespace="ops")) == ["heartbeat", "nightly-cleanup"]
    assert names(fleet.FleetFilter(phase="Failed")) == ["nightly-cleanup"]
    assert names(fleet.FleetFilter(phase="Pending")) == ["Reindex"]
    assert names(fleet.FleetFilter(search="SYNC")) == ["shopify-sync"]
    assert names(fleet.FleetFilter(search="reind")) == ["Reindex"]
    assert names(fleet.FleetFilter(namespace="ops", phase="Active")) == []


def test_the_filter_reads_the_query_and_names_what_is_wrong() -> None:
    wanted = fleet.parse_filter({"namespace": " ops ", "phase": "Paused", "q": "beat"})
    assert wanted == fleet.FleetFilter("ops", "Paused", "beat")
    assert wanted.query() == {"namespace": "ops", "phase": "Paused", "q": "beat"}
    assert fleet.FleetFilter().query() == {}
    with pytest.raises(ValueError, match=r"phase 'Running' is not allowed: use one of Active, "):
        fleet.parse_filter({"phase": "Running"})
    with pytest.raises(ValueError, match=r"q \(search\) has 300 characters: at most 253"):
        fleet.parse_filter({"q": "x" * 300})


def test_the_cards_count_what_the_table_shows() -> None:
    history = [run("2026-11-24T09:00:00Z"), run("2026-11-22T09:00:00Z", "Failed")]
    counted = [
        schedule("a", "ops", status={"counts": {"succeeded": 5, "failed": 2}, "history": history}),
        schedule("b", "ops", annotations={"cronfleet.io/pause": ""}, phase="Paused"),
        schedule("c", "other", status={"counts": {"succeeded": 100}}),
    ]
    view = fleet.fleet_view(counted, fleet.FleetFilter(namespace="ops"), NOW)
    assert [item.row.name for item in view.rows] == ["a", "b"]
    assert (view.stats.schedules, view.stats.enabled) == (2, 1)
    assert (view.stats.runs, view.stats.succeeded, view.stats.failed) == (7, 5, 2)
    assert view.stats.last_24h == 1
    # The namespace list offers every namespace, not only the filtered one.
    assert view.namespaces == ["ops", "other"]
    assert view.total == 3
    assert view.rows[0].success == "71%" and view.rows[1].success == "—"
    assert view.rows[1].next_run == "— (paused)"
    assert view.rows[0].href == "/schedules/ops/a"


def test_the_namespace_fingerprint_changes_with_the_list() -> None:
    assert fleet.namespaces_key(["a", "b"]) == fleet.namespaces_key(["a", "b"])
    assert fleet.namespaces_key(["a", "b"]) != fleet.namespaces_key(["a", "b", "c"])


# -- the Schedule page -----------------------------------------------------------------------


def test_without_patch_permission_every_button_is_disabled_with_the_servers_reason() -> None:
    refusal = 'you may not patch schedules.cronfleet.io in namespace "acme"'
    buttons = detail.action_buttons(schedule("sync"), (False, refusal))
    assert [(b.label, b.enabled, b.reason) for b in buttons] == [
        ("Run now", False, refusal),
        ("Pause", False, refusal),
        ("Resume", False, refusal),
        ("Reset", False, refusal),
    ]


def test_pause_and_resume_follow_the_pause_annotation() -> None:
    running = {b.action: b for b in detail.action_buttons(schedule("sync"), (True, ""))}
    assert running[detail.Action.PAUSE].enabled and running[detail.Action.RUN_NOW].enabled
    assert (running[detail.Action.RESUME].enabled, running[detail.Action.RESUME].reason) == (
        False,
        "not paused",
    )
    paused = schedule("sync", annotations={"cronfleet.io/pause": "db upgrade"}, phase="Paused")
    held = {b.action: b for b in detail.action_buttons(paused, (True, ""))}
    assert held[detail.Action.RESUME].enabled
    assert held[detail.Action.PAUSE].reason == "already paused"
    # spec.suspend belongs to the manifest (GitOps): the dashboard does not fight it.
    suspended = schedule("sync", spec={"cron": "0 2 * * *", "task": "command", "suspend": True})
    by_spec = {b.action: b for b in detail.action_buttons(suspended, (True, ""))}
    assert "spec.suspend" in by_spec[detail.Action.RESUME].reason
    assert not by_spec[detail.Action.PAUSE].enabled


def test_actions_write_annotations_only_with_fresh_tokens() -> None:
    first = detail.action_request(detail.Action.RUN_NOW, NOW)
    second = detail.action_request(detail.Action.RUN_NOW, NOW)
    assert first.token and second.token and first.token != second.token
    assert first.patch == {"metadata": {"annotations": {"cronfleet.io/run-now": first.token}}}
    pause = detail.action_request(detail.Action.PAUSE, NOW, "db upgrade")
    assert pause.patch == {"metadata": {"annotations": {"cronfleet.io/pause": "db upgrade"}}}
    resume = detail.action_request(detail.Action.RESUME, NOW)
    assert resume.patch == {"metadata": {"annotations": {"cronfleet.io/pause": None}}}
    reset = detail.action_request(detail.Action.RESET, NOW)
    assert reset.patch["metadata"]["annotations"]["cronfleet.io/reset"] == reset.token
    for action in detail.Action:
        assert list(detail.action_request(action, NOW).patch) == ["metadata"]
    assert detail.done_message(first, "acme", "sync").startswith(
        f"Run requested (token {first.token})"
    )


def test_unknown_actions_and_pages_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="action 'delete' is not allowed: use one of run-now, "):
        detail.parse_action("delete")
    assert detail.parse_page(None) == 1 and detail.parse_page("3") == 3
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match=f"page '{bad}' is not allowed: a whole number from 1"):
            detail.parse_page(bad)


def test_the_next_runs_read_in_the_schedules_zone_and_in_utc() -> None:
    berlin = schedule(
        "cleanup", spec={"cron": "@midnight", "task": "command", "timeZone": "Europe/Berlin"}
    )
    runs, why = detail.next_runs(berlin, NOW)
    assert why == ""
    assert [(r.local, r.utc) for r in runs[:2]] == [
        ("2026-11-25 00:00:00 CET", "2026-11-24 23:00:00 UTC"),
        ("2026-11-26 00:00:00 CET", "2026-11-25 23:00:00 UTC"),
    ]
    assert runs[0].relative == "in 12h 30m"
    assert len(runs) == detail.NEXT_RUNS
    paused = schedule("cleanup", annotations={"cronfleet.io/pause": "x"}, phase="Paused")
    assert detail.next_runs(paused, NOW) == ([], "none while paused")


def test_history_pages_clamp_and_messages_expand() -> None:
    long = "Traceback (most recent call last):\n" + "x" * 200
    entries = [
        run(f"2026-11-24T{hour:02d}:00:00Z", message=long if hour == 9 else "")
        for hour in range(9, -1, -1)
    ]
    entries += [run(f"2026-11-23T{hour:02d}:00:00Z", "Failed", "exit 1") for hour in range(5)]
    with_history = schedule(
        "sync",
        status={"history": entries},
        spec={"cron": "0 * * * *", "task": "command", "timeZone": "Asia/Kolkata"},
    )
    view = detail.schedule_view(with_history, [], "", (True, ""), NOW, page=9)
    assert (view.history.page, view.history.pages, view.history.total) == (2, 2, 15)
    assert len(view.entries) == 5
    first = detail.schedule_view(with_history, [], "", (True, ""), NOW).entries[0]
    assert first.started == "2026-11-24 14:30:00 IST"
    assert first.summary == "Traceback (most recent call last):" and first.message == long
    failed = detail.schedule_view(with_history, [], "", (True, ""), NOW, failed_only=True)
    assert failed.history.total == 5 and {e.result for e in failed.entries} == {"Failed"}
    assert detail.summary("y" * 100) == "y" * 79 + "…"
    running = detail.history_entry(run("2026-11-24T10:00:00Z", None), detail.zone_of(with_history))
    assert running.result == "Running"


def test_events_are_listed_newest_first() -> None:
    events: list[dict[str, Any]] = [
        {
            "type": "Normal",
            "reason": "RunStarted",
            "message": "old",
            "lastTimestamp": "2026-11-24T08:00:00Z",
        },
        {
            "type": "Warning",
            "reason": "RunFailed",
            "message": "new",
            "count": 3,
            "lastTimestamp": "2026-11-24T10:00:00Z",
        },
        {
            "type": "Normal",
            "reason": "Created",
            "note": "series",
            "eventTime": "2026-11-24T09:00:00.000000Z",
        },
    ]
    shown = detail.event_views(events, NOW)
    assert [(e.reason, e.message, e.count, e.seen) for e in shown] == [
        ("RunFailed", "new", 3, "30m ago"),
        ("Created", "series", 1, "1h 30m ago"),
        ("RunStarted", "old", 1, "2h 30m ago"),
    ]


def test_spans_and_moments_read_briefly() -> None:
    assert display.span(timedelta(seconds=45)) == "45s"
    assert display.span(timedelta(minutes=3, seconds=5)) == "3m"
    assert display.span(timedelta(hours=5, minutes=20)) == "5h 20m"
    assert display.span(timedelta(days=2)) == "2d"
    assert display.relative(NOW + timedelta(minutes=5), NOW) == "in 5m"
    assert display.relative(NOW - timedelta(hours=3), NOW) == "3h ago"
    assert display.relative(None, NOW) == "—"
    assert display.percent(0.955) == "96%" and display.percent(None) == "—"
