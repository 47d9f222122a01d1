"""The pure reconcile: desired CronJob, status, events and the next look."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cronfleet.clock import to_rfc3339
from cronfleet.config import OperatorConfig
from cronfleet.manifests import contains
from cronfleet.reconcile import Observed, Plan, after_created, decide, merged_with_created
from cronfleet_runner.registry import validate_builtin_params

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
CONFIG = OperatorConfig(runner_image="registry.test/cronfleet-runner:1.0")
TASKS = frozenset({"http", "command"})


def schedule(
    generation: int = 1, status: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    body = {
        "cron": "0 2 * * *",
        "timeZone": "Asia/Kolkata",
        "task": "http",
        "params": {"url": "http://x"},
    }
    body.update(spec)
    return {
        "metadata": {"name": "sync", "namespace": "acme", "uid": "u-1", "generation": generation},
        "spec": body,
        "status": status or {},
    }


def run(
    body: dict[str, Any], cronjob: dict[str, Any] | None = None, account: bool | None = None
) -> Plan:
    return decide(Observed(body, cronjob, account, TASKS), CONFIG, NOW)


def test_new_schedule_applies_a_cronjob_and_writes_status() -> None:
    plan = run(schedule())
    assert plan.apply_cronjob is not None
    spec = plan.apply_cronjob["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["suspend"]) == (
        "0 2 * * *",
        "Asia/Kolkata",
        False,
    )
    image = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.test/cronfleet-runner:1.0"
    status = plan.status_patch
    assert status["phase"] == "Active" and status["cronJob"] == "sync"
    assert status["nextRunTime"] == "2026-11-24T20:30:00Z"
    assert status["scheduleDescription"] == "At 02:00 (Asia/Kolkata)"
    assert status["conditions"][0]["reason"] == "Scheduled"
    assert plan.requeue_at == datetime(2026, 11, 24, 20, 30, 1, tzinfo=UTC)


def test_nothing_to_do_when_cronjob_and_status_are_current() -> None:
    first = run(schedule())
    assert first.apply_cronjob is not None
    # What the API server stores has defaults on top of what was applied.
    stored = {**first.apply_cronjob, "status": {}}
    stored["spec"] = {**first.apply_cronjob["spec"], "extraDefault": 1}
    second = run(schedule(status=first.status_patch), stored)
    assert second.apply_cronjob is None
    assert second.status_patch == {}
    assert second.events == []


def test_hand_edit_is_drift() -> None:
    first = run(schedule())
    assert first.apply_cronjob is not None
    edited = {
        **first.apply_cronjob,
        "spec": {**first.apply_cronjob["spec"], "schedule": "5 5 * * *"},
    }
    assert run(schedule(status=first.status_patch), edited).apply_cronjob is not None


def test_suspend_pauses_and_resume_emits_events() -> None:
    active = run(schedule())
    paused = run(schedule(generation=2, status=active.status_patch, suspend=True))
    assert paused.apply_cronjob is not None and paused.apply_cronjob["spec"]["suspend"] is True
    assert paused.status_patch["phase"] == "Paused"
    assert paused.status_patch["nextRunTime"] is None
    assert [e.reason for e in paused.events] == ["Suspended"]
    status = {**active.status_patch, **paused.status_patch}
    resumed = run(schedule(generation=3, status=status))
    assert resumed.status_patch["phase"] == "Active"
    assert [e.reason for e in resumed.events] == ["Resumed"]


def test_invalid_update_keeps_cronjob_and_reports_each_problem_once() -> None:
    first = run(schedule())
    assert first.apply_cronjob is not None
    cronjob = first.apply_cronjob
    bad = schedule(generation=2, status=first.status_patch, cron="0 25 * * *", task="nope")
    plan = run(bad, cronjob)
    assert plan.apply_cronjob is None
    assert plan.status_patch["phase"] == "Invalid"
    message = plan.status_patch["message"]
    assert "spec.cron: '0 25 * * *'" in message and "spec.task: 'nope'" in message
    assert plan.status_patch["conditions"][0]["reason"] == "InvalidSpec"
    assert "nextRunTime" not in plan.status_patch  # still the CronJob's next fire time
    assert [e.reason for e in plan.events] == ["InvalidSpec"]
    again = run(
        schedule(
            generation=2,
            status={**first.status_patch, **plan.status_patch},
            cron="0 25 * * *",
            task="nope",
        ),
        cronjob,
    )
    assert again.events == [] and again.status_patch == {}


def test_missing_service_account_is_invalid_until_the_watch_sees_it() -> None:
    plan = run(schedule(serviceAccountName="syncer"), account=False)
    assert plan.apply_cronjob is None
    assert "spec.serviceAccountName: 'syncer'" in plan.status_patch["message"]
    # The ServiceAccount watch queues the Schedule when the account appears.
    assert plan.requeue_at is None
    # While the operator's cache of accounts is still filling, nothing is judged.
    unknown = run(schedule(serviceAccountName="syncer"), account=None)
    assert unknown.apply_cronjob is not None and unknown.status_patch["phase"] == "Active"
    assert unknown.requeue_at is not None and (unknown.requeue_at - NOW).total_seconds() == 10


def test_contains_ignores_server_defaults_but_not_changes() -> None:
    assert contains({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2}})
    assert not contains({"a": [1, 2]}, {"a": [1]})
    assert not contains({"a": {"c": 1}}, {"a": {"c": 2}})


def test_params_the_runner_would_refuse_are_invalid_before_any_run() -> None:
    observed = Observed(
        schedule(params={"url": "not a url"}), None, None, TASKS, validate_builtin_params
    )
    plan = decide(observed, CONFIG, NOW)
    assert plan.apply_cronjob is None
    assert "spec.params" in plan.status_patch["message"]
    assert "params.url" in plan.status_patch["message"]
    good = Observed(schedule(), None, None, TASKS, validate_builtin_params)
    assert decide(good, CONFIG, NOW).apply_cronjob is not None


def test_a_rejected_cronjob_is_invalid_and_keeps_the_run_tracking() -> None:
    body = schedule(status={"phase": "Paused", "history": []})
    body["metadata"]["annotations"] = {"cronfleet.io/run-now": "now"}
    plan = run(body)
    assert plan.apply_cronjob is not None and plan.create_jobs
    # The controller feeds the API server's refusal back, and decides again.
    refused = Observed(body, None, None, TASKS, cronjob_rejection="spec.jobTemplate: Invalid")
    again = decide(refused, CONFIG, NOW)
    patch = again.status_patch
    assert again.apply_cronjob is None and again.create_jobs == []
    assert patch["phase"] == "Invalid"
    assert "the CronJob for this spec was rejected: spec.jobTemplate" in patch["message"]
    assert patch["conditions"][0]["reason"] == "InvalidSpec"
    assert patch["lastHandledTokens"] == {"runNow": "now"}  # run tracking goes on
    assert [e.reason for e in again.events] == ["RunNowRefused", "InvalidSpec"]
    # Reported once: the same rejection again writes and posts nothing new.
    settled = {**body, "status": {**body["status"], **patch}}
    repeat = decide(
        Observed(settled, None, None, TASKS, cronjob_rejection="spec.jobTemplate: Invalid"),
        CONFIG,
        NOW,
    )
    assert repeat.events == [] and repeat.status_patch == {}


def conditions(plan: Plan) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in plan.status_patch["conditions"]}


def test_a_cron_that_never_fires_is_invalid_and_says_so() -> None:
    plan = run(schedule(cron="0 0 31 2 *"))
    assert plan.status_patch["phase"] == "Invalid"
    assert "never fires" in plan.status_patch["message"]
    assert conditions(plan)["Stalled"] == ("True", "InvalidSpec")


def test_conditions_follow_the_kstatus_convention() -> None:
    active = conditions(run(schedule()))
    assert active == {
        "Ready": ("True", "Scheduled"),
        "Stalled": ("False", "Progressing"),
        "Reconciling": ("False", "Reconciled"),
        "RunBlocked": ("False", "NoBlockedRuns"),
    }
    failed = {"phase": "Failed", "observedGeneration": 1}
    halted = conditions(run(schedule(status=failed)))
    assert halted["Ready"] == ("False", "RetriesExhausted") and halted["Stalled"][0] == "True"
    going = run(schedule(status=failed, retry={"onExhausted": "Continue"}))
    assert conditions(going)["Stalled"][0] == "False"


def test_runs_are_still_recorded_while_a_later_spec_is_invalid() -> None:
    done = {
        "metadata": {
            "name": "sync-29000000",
            "annotations": {"cronfleet.io/trigger": "Scheduled"},
            "creationTimestamp": "2026-11-24T07:00:00Z",
        },
        "status": {
            "startTime": "2026-11-24T07:00:01Z",
            "completionTime": "2026-11-24T07:00:05Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    body = schedule(task="no-such-task")
    plan = decide(Observed(body, None, None, TASKS, jobs=[done]), CONFIG, NOW)
    assert plan.status_patch["phase"] == "Invalid"
    assert plan.status_patch["counts"]["succeeded"] == 1
    assert plan.status_patch["recordedJobs"] == ["sync-29000000"]


def finished_job(name: str, fire: str, result: str = "Complete") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "annotations": {
                "cronfleet.io/trigger": "Scheduled",
                "cronfleet.io/scheduled-time": fire,
            },
            "creationTimestamp": fire,
        },
        "status": {
            "startTime": fire,
            "completionTime": fire,
            "conditions": [{"type": result, "status": "True"}],
        },
    }


def at_schedule(at: str, **extra: Any) -> dict[str, Any]:
    body = schedule(cron=None, at=at, **extra)
    del body["spec"]["cron"]
    body["metadata"]["creationTimestamp"] = "2026-11-24T07:00:00Z"
    return body


def test_an_at_schedule_has_no_cronjob_and_completes_after_its_run() -> None:
    body = at_schedule("2026-11-24T09:00:00Z")
    waiting = run(body)
    assert waiting.apply_cronjob is None and waiting.status_patch["phase"] == "Active"
    assert waiting.status_patch["nextRunTime"] == "2026-11-24T09:00:00Z"
    assert waiting.status_patch["scheduleDescription"] == "Once at 2026-11-24 14:30 (Asia/Kolkata)"
    later = datetime(2026, 11, 24, 9, 5, tzinfo=UTC)
    done = finished_job("sync-1795510800", "2026-11-24T09:00:00Z")
    plan = decide(Observed(body, None, None, TASKS, jobs=[done]), CONFIG, later)
    assert plan.status_patch["phase"] == "Completed"
    assert plan.status_patch["completionTime"] == "2026-11-24T09:05:00Z"
    assert conditions(plan)["Ready"] == ("True", "Completed")
    assert [e.reason for e in plan.events][-1] == "Completed"


def test_a_completed_schedule_is_deleted_after_its_ttl() -> None:
    body = at_schedule("2026-11-24T09:00:00Z", ttlSecondsAfterCompleted=60)
    body["status"] = {
        "phase": "Completed",
        "completionTime": "2026-11-24T09:05:00Z",
        "lastRunTime": "2026-11-24T09:00:00Z",
        "scheduledRuns": 1,
    }
    early = decide(
        Observed(body, None, None, TASKS), CONFIG, datetime(2026, 11, 24, 9, 5, 30, tzinfo=UTC)
    )
    assert not early.delete_schedule and early.requeue_at == datetime(
        2026, 11, 24, 9, 6, tzinfo=UTC
    )
    late = decide(
        Observed(body, None, None, TASKS), CONFIG, datetime(2026, 11, 24, 9, 6, tzinfo=UTC)
    )
    assert late.delete_schedule


def test_an_at_in_the_past_does_not_run_and_says_so() -> None:
    plan = run(at_schedule("2026-11-24T06:00:00Z"))
    assert plan.status_patch["phase"] == "Completed" and plan.create_jobs == []
    assert "had already passed when the Schedule was created" in plan.status_patch["message"]
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "Completed")]


def test_a_cadence_that_is_no_longer_cron_deletes_the_cronjob() -> None:
    body = schedule(every="90m")
    del body["spec"]["cron"]
    plan = run(body, cronjob={"metadata": {"name": "sync"}, "spec": {"schedule": "0 2 * * *"}})
    assert plan.delete_cronjob and plan.apply_cronjob is None
    assert plan.status_patch.get("cronJob") is None
    manual = schedule()
    del manual["spec"]["cron"]
    only = run(manual)
    assert only.status_patch["scheduleDescription"] == "Only when run manually"
    assert only.status_patch["phase"] == "Active" and "nextRunTime" not in only.status_patch


def test_max_runs_suspends_the_cronjob_and_completes() -> None:
    done = finished_job("sync-29400000", "2026-11-23T20:30:00Z")
    body = schedule(maxRuns=1)
    plan = decide(Observed(body, None, None, TASKS, jobs=[done]), CONFIG, NOW)
    assert plan.apply_cronjob is not None and plan.apply_cronjob["spec"]["suspend"] is True
    assert plan.status_patch["phase"] == "Completed" and plan.status_patch["remainingRuns"] == 0


def test_an_at_just_before_creation_runs_when_catch_up_covers_it() -> None:
    body = at_schedule("2026-11-24T06:30:00Z", catchUp={"windowSeconds": 7200})
    plan = run(body)
    [caught] = plan.create_jobs
    assert caught["metadata"]["annotations"]["cronfleet.io/trigger"] == "CatchUp"
    assert plan.status_patch["phase"] == "Active"


def test_a_run_the_operator_starts_enters_the_history_in_the_same_status_write() -> None:
    ten_ago = to_rfc3339(NOW - timedelta(minutes=10))
    status = {"phase": "Active", "lastRunTime": ten_ago, "missedRunsCheckedUntil": ten_ago}
    body = schedule(every="10m", startTime=to_rfc3339(NOW - timedelta(minutes=20)), status=status)
    del body["spec"]["cron"]
    body["metadata"]["creationTimestamp"] = to_rfc3339(NOW - timedelta(hours=1))
    observed = Observed(body, None, None, TASKS)
    first = decide(observed, CONFIG, NOW)
    [job] = first.create_jobs
    assert first.status_patch["lastRunTime"] == to_rfc3339(NOW)
    created = {**job, "metadata": {**job["metadata"], "creationTimestamp": to_rfc3339(NOW)}}
    again = decide(after_created(observed, first, [created]), CONFIG, NOW)
    assert again.create_jobs == []
    merged = merged_with_created(first, again)
    assert merged is not None
    # One write: the fire time handled, and the run it started.
    assert merged.status_patch["lastRunTime"] == to_rfc3339(NOW)
    assert [entry["job"] for entry in merged.status_patch["history"]] == [job["metadata"]["name"]]
    assert merged.status_patch["scheduledRuns"] == 1
    assert [event.reason for event in merged.events] == ["RunStarted"]
    # A second look that would act otherwise is left to the next reconcile.
    assert merged_with_created(first, Plan(create_jobs=[job])) is None
    assert merged_with_created(first, Plan(delete_jobs=["x"])) is None
