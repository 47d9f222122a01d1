"""The pause annotation: suspended like spec.suspend, without touching the spec.

Also what status.manualRuns says about each run-now token.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cronfleet.clock import to_rfc3339
from cronfleet.config import OperatorConfig
from cronfleet.models import ScheduleStatus
from cronfleet.pausing import PAUSE_ANNOTATION, suspension, suspension_of
from cronfleet.reconcile import Observed, decide
from cronfleet.runs import manual_job_name, retry_job_name
from cronfleet.tracking import track
from tests.unit.operator.test_tracking import CONFIG, NOW, running, schedule, spec

DECIDE_NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
FIXTURE = Path(__file__).parents[1] / "fixtures" / "landed-0.1-failing-schedule.json"
PAUSED = {PAUSE_ANNOTATION: "db migration"}


def body(
    annotations: dict[str, str] | None = None, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "sync",
            "namespace": "acme",
            "uid": "u-1",
            "generation": 1,
            "annotations": annotations or {},
        },
        "spec": {"cron": "0 2 * * *", "task": "command", "params": {"argv": ["true"]}},
        "status": status or {},
    }


def reconcile(schedule_body: dict[str, Any]) -> Any:
    return decide(
        Observed(schedule_body, None, None, frozenset({"command"})),
        OperatorConfig(runner_image="registry.test/runner:1"),
        DECIDE_NOW,
    )


def test_spec_suspend_and_the_annotation_are_one_suspension() -> None:
    assert suspension(False, {}) is None
    assert suspension(False, None) is None
    by_spec = suspension(True, PAUSED)
    assert by_spec is not None and by_spec.describe() == "suspended (spec.suspend)"
    by_annotation = suspension(False, PAUSED)
    assert by_annotation is not None
    assert by_annotation.describe() == "paused (cronfleet.io/pause: db migration)"
    # Present without a value still pauses: the annotation's presence is the switch.
    empty = suspension_of(body({PAUSE_ANNOTATION: ""}))
    assert empty is not None and empty.describe() == "paused (cronfleet.io/pause: no reason given)"


def test_a_long_or_multi_line_reason_is_kept_as_one_bounded_line() -> None:
    held = suspension(False, {PAUSE_ANNOTATION: "db\nmigration  " + "x" * 1000})
    assert held is not None and held.reason.startswith("db migration xxx")
    assert len(held.reason) == 256 and held.reason.endswith("…")


def test_the_annotation_pauses_the_cronjob_and_names_its_reason() -> None:
    plan = reconcile(body(PAUSED))
    assert plan.apply_cronjob is not None and plan.apply_cronjob["spec"]["suspend"] is True
    status = plan.status_patch
    assert status["phase"] == "Paused"
    assert status["message"] == (
        "paused by cronfleet.io/pause: db migration; no runs until the annotation is removed"
    )
    assert status.get("nextRunTime") is None
    ready = status["conditions"][0]
    assert (ready["reason"], ready["message"]) == ("Suspended", status["message"])
    assert [(e.reason, e.message) for e in plan.events] == [("Suspended", status["message"])]


def test_removing_the_annotation_resumes() -> None:
    paused = reconcile(body(PAUSED))
    resumed = reconcile(body({}, status=paused.status_patch))
    assert resumed.status_patch["phase"] == "Active"
    assert resumed.apply_cronjob is not None and resumed.apply_cronjob["spec"]["suspend"] is False
    assert [(e.reason, e.message) for e in resumed.events] == [
        ("Resumed", "cronfleet.io/pause was removed: runs resume")
    ]


def test_a_new_reason_is_announced_again() -> None:
    paused = reconcile(body(PAUSED))
    again = reconcile(body({PAUSE_ANNOTATION: "incident 42"}, status=paused.status_patch))
    assert again.status_patch["message"].startswith("paused by cronfleet.io/pause: incident 42")
    assert [e.reason for e in again.events] == ["Suspended"]


def test_a_paused_schedule_holds_its_retry_and_releases_it_on_resume() -> None:
    state = {"retryCount": 1, "retryOf": "sync-1", "nextRetryTime": to_rfc3339(NOW)}
    held = track(schedule(state, annotations=PAUSED), spec(), [], {}, CONFIG, NOW)
    assert held.create_jobs == [] and held.updates["nextRetryTime"] == to_rfc3339(NOW)
    assert [e.message for e in held.events] == [
        "Retry 1 of sync-1 is held while the schedule is paused (cronfleet.io/pause: db "
        "migration); removing the annotation lets it start"
    ]
    resumed = track(schedule({**state, **held.updates}), spec(), [], {}, CONFIG, NOW)
    assert [j["metadata"]["name"] for j in resumed.create_jobs] == [
        retry_job_name("sync", "sync-1", 1)
    ]


def test_run_now_while_paused_is_refused_and_the_status_says_why() -> None:
    ask = {"cronfleet.io/run-now": "go", **PAUSED}
    out = track(schedule(annotations=ask), spec(), [], {}, CONFIG, NOW)
    assert out.create_jobs == []
    [entry] = out.updates["manualRuns"]
    assert entry["token"] == "go" and entry["state"] == "Refused" and "job" not in entry
    assert entry["message"] == (
        "the schedule is paused (cronfleet.io/pause: db migration); resume it, then annotate "
        "with a new value"
    )


def test_manual_runs_say_which_job_a_token_started_even_after_waiting() -> None:
    ask = {"cronfleet.io/run-now": "go"}
    busy = running("sync-29000000")
    started = track(schedule(), spec(), [busy], {}, CONFIG, NOW).updates
    waiting = track(schedule(started, annotations=ask), spec(), [busy], {}, CONFIG, NOW)
    [deferred] = waiting.updates["manualRuns"]
    assert (deferred["state"], deferred.get("job")) == ("Deferred", None)
    assert "concurrencyPolicy is Forbid" in deferred["message"]
    later = track(
        schedule({**started, **waiting.updates}, annotations=ask), spec(), [], {}, CONFIG, NOW
    )
    [entry] = later.updates["manualRuns"]
    assert (entry["token"], entry["state"], entry["job"]) == (
        "go",
        "Started",
        manual_job_name("sync", "go"),
    )
    assert [j["metadata"]["name"] for j in later.create_jobs] == [entry["job"]]


def test_only_the_ten_newest_tokens_are_kept_newest_first() -> None:
    status: dict[str, Any] = {}
    for n in range(12):
        out = track(
            schedule(status, annotations={"cronfleet.io/run-now": f"t{n}"}),
            spec(),
            [],
            {},
            CONFIG,
            NOW,
        )
        status = {**status, **out.updates, "history": []}
    tokens = [entry["token"] for entry in status["manualRuns"]]
    assert tokens == [f"t{n}" for n in range(11, 1, -1)]


def test_the_previous_versions_status_loads_and_gains_manual_runs() -> None:
    landed = json.loads(FIXTURE.read_text())
    model = ScheduleStatus.model_validate(landed["status"])
    assert model.manual_runs == []
    out = track(landed, spec(), [], {}, CONFIG, NOW)
    assert out.updates["manualRuns"] == []
    # An entry this version cannot read is dropped, not fatal.
    landed["status"]["manualRuns"] = [{"token": "x"}, {"token": "y", "state": "Started"}]
    out = track(landed, spec(), [], {}, CONFIG, NOW)
    assert [entry["token"] for entry in out.updates["manualRuns"]] == ["y"]
