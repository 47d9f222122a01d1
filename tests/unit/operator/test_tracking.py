"""Run tracking decisions, replayed on hand-made Jobs and pods."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cronfleet.clock import to_rfc3339
from cronfleet.config import OperatorConfig
from cronfleet.models import Backoff, ScheduleSpec
from cronfleet.runs import (
    backfill_job_name,
    catch_up_job_name,
    manual_job_name,
    retry_delay,
    retry_job_name,
    scheduled_time,
)
from cronfleet.tracking import Observations, track

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
CONFIG = OperatorConfig()


def spec(**fields: Any) -> ScheduleSpec:
    body: dict[str, Any] = {"cron": "0 * * * *", "task": "sleep"}
    body.update(fields)
    return ScheduleSpec.model_validate(body)


def schedule(
    status: dict[str, Any] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "sync",
            "namespace": "acme",
            "uid": "u",
            "generation": 1,
            "annotations": annotations,
        },
        "status": {"observedGeneration": 1, "phase": "Active", **(status or {})},
    }


def job(
    name: str,
    result: str | None,
    *,
    trigger: str = "Scheduled",
    attempt: int = 0,
    finished: datetime = NOW - timedelta(seconds=30),
    origin: str | None = None,
    reason: str = "BackoffLimitExceeded",
) -> dict[str, Any]:
    annotations = {"cronfleet.io/trigger": trigger, "cronfleet.io/attempt": str(attempt)}
    if origin:
        annotations["cronfleet.io/origin"] = origin
    status: dict[str, Any] = {"startTime": to_rfc3339(finished - timedelta(seconds=10))}
    if result == "Succeeded":
        status["conditions"] = [{"type": "Complete", "status": "True"}]
        status["completionTime"] = to_rfc3339(finished)
    elif result == "Failed":
        status["conditions"] = [
            {
                "type": "Failed",
                "status": "True",
                "reason": reason,
                "lastTransitionTime": to_rfc3339(finished),
            }
        ]
    return {
        "metadata": {
            "name": name,
            "annotations": annotations,
            "creationTimestamp": to_rfc3339(finished - timedelta(seconds=11)),
        },
        "status": status,
    }


def pod(code: int, message: str) -> dict[str, Any]:
    summary = json.dumps({"result": "Failed" if code else "Succeeded", "message": message})
    return {
        "status": {
            "containerStatuses": [
                {
                    "name": "runner",
                    "state": {
                        "terminated": {
                            "exitCode": code,
                            "message": summary,
                            "finishedAt": to_rfc3339(NOW),
                        }
                    },
                }
            ]
        }
    }


def test_a_failure_schedules_a_retry_with_backoff_and_creates_it_when_due() -> None:
    failed = job("sync-29000000", "Failed", finished=NOW - timedelta(seconds=5))
    policy = spec(retry={"maxRetries": 2, "backoff": {"initialDelaySeconds": 20}})
    pods = {"sync-29000000": [pod(1, "boom")]}
    out = track(schedule(), policy, [failed], pods, CONFIG, NOW)
    assert out.updates["retryCount"] == 1 and out.updates["retryOf"] == "sync-29000000"
    assert out.updates["nextRetryTime"] == to_rfc3339(NOW + timedelta(seconds=15))
    assert out.requeue_at == NOW + timedelta(seconds=15)
    assert out.create_jobs == []
    assert out.updates["counts"] == {"succeeded": 0, "failed": 1, "cancelled": 0, "missed": 0}
    entry = out.updates["history"][0]
    assert (entry["result"], entry["exitCode"], entry["message"]) == ("Failed", 1, "boom")
    assert [e.reason for e in out.events] == ["RunFailed", "RetryScheduled"]
    # Counted through status.recordedJobs alone: no request to mark the Job.
    assert out.updates["recordedJobs"] == ["sync-29000000"] and out.recorded == []

    later = NOW + timedelta(seconds=16)
    due = track(schedule(out.updates), policy, [failed], pods, CONFIG, later)
    [retry] = due.create_jobs
    assert retry["metadata"]["name"] == retry_job_name("sync", "sync-29000000", 1)
    assert retry["metadata"]["annotations"]["cronfleet.io/trigger"] == "Retry"
    assert retry["metadata"]["annotations"]["cronfleet.io/origin"] == "sync-29000000"
    assert due.updates["nextRetryTime"] is None and due.events == []


def test_a_recorded_run_is_never_counted_again() -> None:
    failed = job("sync-29000000", "Failed")
    first = track(schedule(), spec(), [failed], {}, CONFIG, NOW)
    replay = track(schedule(first.updates), spec(), [failed], {}, CONFIG, NOW)
    assert replay.updates["counts"] == first.updates["counts"]
    assert replay.finished == [] and replay.events == []
    annotated = job("sync-29000000", "Failed")
    annotated["metadata"]["annotations"]["cronfleet.io/recorded"] = "true"
    trimmed = track(
        schedule({**first.updates, "history": []}), spec(), [annotated], {}, CONFIG, NOW
    )
    assert trimmed.updates["counts"] == first.updates["counts"]


def test_a_job_still_there_when_its_name_leaves_the_ledger_is_marked_first() -> None:
    # 200 names in the ledger, the oldest a Job still there (a failed one the
    # history limits keep); one more run finishes and pushes it out.
    ledger = [f"sync-{index}" for index in range(200, 0, -1)]
    lingering = job("sync-1", "Failed")
    marked_already = job("sync-2", "Failed")
    marked_already["metadata"]["annotations"]["cronfleet.io/recorded"] = "true"
    finished = job("sync-201", "Succeeded")
    state = {"recordedJobs": ledger, "counts": {"succeeded": 200}}
    out = track(schedule(state), spec(), [lingering, finished], {}, CONFIG, NOW)
    assert out.updates["recordedJobs"][0] == "sync-201"
    assert "sync-1" not in out.updates["recordedJobs"]
    assert out.recorded == ["sync-1"]
    # Marked, it is never counted again though the ledger forgot it.
    lingering["metadata"]["annotations"]["cronfleet.io/recorded"] = "true"
    replay = track(schedule(out.updates), spec(), [lingering, finished], {}, CONFIG, NOW)
    assert replay.updates["counts"] == out.updates["counts"] and replay.finished == []
    # Two more runs push sync-2 and sync-3 out: sync-2 is marked, sync-3 is gone.
    more = [job("sync-202", "Succeeded"), job("sync-203", "Succeeded")]
    later = track(schedule(out.updates), spec(), [marked_already, *more], {}, CONFIG, NOW)
    assert later.recorded == []


def test_success_resets_the_retry_cycle() -> None:
    state = {"retryCount": 2, "retryOf": "sync-1", "consecutiveFailures": 2}
    ok = job("sync-r", "Succeeded", trigger="Retry", attempt=2, origin="sync-1")
    out = track(schedule(state), spec(), [ok], {}, CONFIG, NOW)
    assert out.updates["retryCount"] == 0 and out.updates["consecutiveFailures"] == 0
    assert out.updates["retryOf"] is None
    assert [e.reason for e in out.events] == ["RunSucceeded"]


def test_exhausted_retries_fail_the_schedule() -> None:
    state = {"retryCount": 2, "retryOf": "sync-1", "consecutiveFailures": 2}
    last = job("sync-r2", "Failed", trigger="Retry", attempt=2, origin="sync-1")
    out = track(schedule(state), spec(retry={"maxRetries": 2}), [last], {}, CONFIG, NOW)
    assert out.failed and out.updates["nextRetryTime"] is None and not out.create_jobs
    assert [e.reason for e in out.events] == ["RunFailed", "RetriesExhausted"]


def test_exit_code_two_and_timeouts() -> None:
    permanent = job("sync-1", "Failed")
    out = track(schedule(), spec(), [permanent], {"sync-1": [pod(2, "bad params")]}, CONFIG, NOW)
    assert out.updates["retryCount"] == 0 and not out.create_jobs
    slow = job("sync-2", "Failed", reason="DeadlineExceeded")
    timed = track(schedule(), spec(), [slow], {}, CONFIG, NOW)
    assert timed.updates["history"][0]["result"] == "TimedOut"
    assert timed.updates["retryCount"] == 1


def test_reset_token_and_spec_change_clear_failed() -> None:
    failed = {"phase": "Failed", "retryCount": 3, "consecutiveFailures": 4}
    out = track(
        schedule(failed, annotations={"cronfleet.io/reset": "t1"}), spec(), [], {}, CONFIG, NOW
    )
    assert not out.failed and out.updates["retryCount"] == 0
    assert out.updates["lastHandledTokens"] == {"reset": "t1"}
    again = track(
        schedule(
            {**failed, "lastHandledTokens": {"reset": "t1"}},
            annotations={"cronfleet.io/reset": "t1"},
        ),
        spec(),
        [],
        {},
        CONFIG,
        NOW,
    )
    assert again.failed
    changed = schedule(failed)
    changed["metadata"]["generation"] = 2
    assert not track(changed, spec(), [], {}, CONFIG, NOW).failed


def test_run_now_once_per_token() -> None:
    out = track(schedule(annotations={"cronfleet.io/run-now": "a"}), spec(), [], {}, CONFIG, NOW)
    [manual] = out.create_jobs
    assert manual["metadata"]["name"] == manual_job_name("sync", "a")
    seen = track(
        schedule(out.updates, annotations={"cronfleet.io/run-now": "a"}),
        spec(),
        [],
        {},
        CONFIG,
        NOW,
    )
    assert seen.create_jobs == []


def test_missed_fire_time_and_its_cause() -> None:
    checked = to_rfc3339(NOW - timedelta(hours=2, minutes=30))
    ran = job("sync-29000000", "Succeeded", finished=NOW - timedelta(hours=1, minutes=59))
    ran["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] = to_rfc3339(
        NOW - timedelta(hours=2)
    )
    out = track(schedule({"missedRunsCheckedUntil": checked}), spec(), [ran], {}, CONFIG, NOW)
    # 08:00 ran; 09:00 did not; 10:00 is still within its starting deadline.
    assert [m.scheduled_time for m in out.missed] == ["2026-11-24T09:00:00Z"]
    assert "startingDeadlineSeconds" in out.missed[0].reason
    assert out.updates["missedRunsCheckedUntil"] == "2026-11-24T09:00:00Z"
    paused = track(
        schedule({"missedRunsCheckedUntil": checked}), spec(suspend=True), [], {}, CONFIG, NOW
    )
    assert paused.missed == []


def test_backoff_and_names() -> None:
    backoff = Backoff(initial_delay_seconds=30, factor=2, max_delay_seconds=100)
    assert [retry_delay(backoff, n).total_seconds() for n in range(4)] == [30, 60, 100, 100]
    long = "x" * 52
    assert len(retry_job_name(long, "origin", 10)) <= 63
    assert retry_job_name("a", "o", 1) == retry_job_name("a", "o", 1)
    assert retry_job_name("a", "o", 1) != retry_job_name("a", "o", 2)
    assert scheduled_time({"metadata": {"name": "sync-29400000"}}) == datetime.fromtimestamp(
        29400000 * 60, UTC
    )


def test_missed_runs_wait_for_the_first_listings() -> None:
    checked = to_rfc3339(NOW - timedelta(hours=2, minutes=30))
    state = {"missedRunsCheckedUntil": checked}
    early = track(schedule(state), spec(), [], {}, CONFIG, NOW, check_missed=False)
    assert early.missed == [] and early.updates["missedRunsCheckedUntil"] == checked
    assert early.requeue_at is not None and early.requeue_at > NOW


# -- defects found by outside checks, each a decision replayed here -----------------


def waiting_pod(reason: str, message: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "p"},
        "status": {
            "containerStatuses": [
                {"name": "runner", "state": {"waiting": {"reason": reason, "message": message}}}
            ]
        },
    }


def running(name: str, *, trigger: str = "Scheduled", created: datetime = NOW) -> dict[str, Any]:
    body = job(name, None, trigger=trigger, finished=created + timedelta(seconds=11))
    return body


def test_continue_keeps_retrying_every_failing_run_after_exhaustion() -> None:
    policy = spec(
        retry={"maxRetries": 1, "onExhausted": "Continue", "backoff": {"initialDelaySeconds": 5}}
    )
    exhausted = {"phase": "Failed", "consecutiveFailures": 2, "recordedJobs": ["sync-1", "sync-r"]}
    third = job("sync-29000100", "Failed", finished=NOW - timedelta(seconds=1))
    out = track(schedule(exhausted), policy, [third], {}, CONFIG, NOW)
    assert out.failed and out.updates["retryCount"] == 1 and out.create_jobs == []
    later = NOW + timedelta(seconds=5)
    due = track(schedule({**exhausted, **out.updates}), policy, [third], {}, CONFIG, later)
    [retry] = due.create_jobs
    assert retry["metadata"]["name"] == retry_job_name("sync", "sync-29000100", 1)
    assert due.updates["nextRetryTime"] is None


def test_runs_are_counted_once_when_no_history_is_kept() -> None:
    policy = spec(history={"keep": 0})
    done = job("sync-m-1", "Succeeded", trigger="Manual")
    first = track(schedule(), policy, [done], {}, CONFIG, NOW)
    assert first.updates["counts"]["succeeded"] == 1 and first.updates["history"] == []
    # The Job's recorded annotation may not have reached the cache yet.
    again = track(schedule(first.updates), policy, [done], {}, CONFIG, NOW)
    assert again.updates["counts"]["succeeded"] == 1 and again.finished == []


def test_a_run_whose_job_is_deleted_is_cancelled_and_not_retried() -> None:
    start = track(schedule(), spec(), [running("sync-29000000")], {}, CONFIG, NOW)
    assert start.updates["history"][0].get("result") is None
    cold = track(schedule(start.updates), spec(), [], {}, CONFIG, NOW, check_missed=False)
    assert cold.updates["history"][0].get("result") is None  # the Job may not be listed yet
    gone = track(schedule(start.updates), spec(), [], {}, CONFIG, NOW)
    entry = gone.updates["history"][0]
    assert (entry["result"], entry["reason"]) == ("Cancelled", "Deleted")
    assert gone.updates["counts"]["cancelled"] == 1 and gone.updates["retryCount"] == 0
    assert [e.reason for e in gone.events] == ["RunCancelled"]
    replaced = track(
        schedule(start.updates), spec(concurrencyPolicy="Replace"), [], {}, CONFIG, NOW
    )
    assert replaced.updates["history"][0]["reason"] == "Replaced"


def test_a_run_that_cannot_start_is_reported_then_failed_as_blocked() -> None:
    policy = spec(startTimeoutSeconds=60, retry={"maxRetries": 1})
    stuck = running("sync-29000000", created=NOW - timedelta(seconds=5))
    pods = {"sync-29000000": [waiting_pod("CreateContainerConfigError", 'secret "db" not found')]}
    out = track(schedule(), policy, [stuck], pods, CONFIG, NOW)
    assert out.blocked is not None and out.blocked.reason == "CreateContainerConfigError"
    assert [e.reason for e in out.events] == ["RunStarted", "RunBlocked"]
    assert out.requeue_at == NOW + timedelta(seconds=55)
    quiet = track(schedule(out.updates), policy, [stuck], pods, CONFIG, NOW)
    assert quiet.events == []  # announced once per reason
    late = NOW + timedelta(seconds=56)
    failed = track(schedule(out.updates), policy, [stuck], pods, CONFIG, late)
    entry = failed.updates["history"][0]
    assert (entry["result"], entry["reason"]) == ("Failed", "Blocked")
    assert failed.delete_jobs == ["sync-29000000"] and failed.updates["retryCount"] == 1
    assert [e.reason for e in failed.events] == ["RunFailed", "RetryScheduled"]
    gone = track(schedule(failed.updates), policy, [], {}, CONFIG, late)
    assert gone.updates["counts"]["failed"] == 1 and gone.updates["counts"]["cancelled"] == 0


def test_a_job_whose_pod_is_refused_is_blocked_with_the_job_controllers_message() -> None:
    stuck = running("sync-29000000", created=NOW - timedelta(seconds=20))
    seen = Observations(job_messages={"sync-29000000": 'no PriorityClass with name "x"'})
    out = track(schedule(), spec(), [stuck], {}, CONFIG, NOW, seen=seen)
    assert out.blocked is not None and out.blocked.reason == "FailedCreate"
    assert "PriorityClass" in out.blocked.message
    fresh = running("sync-29000001", created=NOW - timedelta(seconds=1))
    assert track(schedule(), spec(), [fresh], {}, CONFIG, NOW).blocked is None


def test_suspend_holds_a_due_retry_and_a_spec_change_drops_it() -> None:
    state = {"retryCount": 1, "retryOf": "sync-1", "nextRetryTime": to_rfc3339(NOW)}
    held = track(schedule(state), spec(suspend=True), [], {}, CONFIG, NOW)
    assert held.create_jobs == [] and held.updates["nextRetryTime"] == to_rfc3339(NOW)
    assert [e.reason for e in held.events] == ["RetryHeld"]
    resumed = schedule({**state, **held.updates})
    resumed["metadata"]["generation"] = 2
    out = track(resumed, spec(), [], {}, CONFIG, NOW)
    assert out.create_jobs == [] and out.updates["nextRetryTime"] is None
    assert [e.reason for e in out.events] == ["RetriesDropped"]


def test_retries_and_manual_runs_honour_concurrency_policy() -> None:
    state = {"retryCount": 1, "retryOf": "sync-1", "nextRetryTime": to_rfc3339(NOW)}
    busy = running("sync-29000000")
    seen = track(schedule(), spec(), [busy], {}, CONFIG, NOW)
    status = {**state, "history": seen.updates["history"]}
    deferred = track(schedule(status), spec(), [busy], {}, CONFIG, NOW)
    assert deferred.create_jobs == [] and [e.reason for e in deferred.events] == ["RetryDeferred"]
    replace = track(schedule(status), spec(concurrencyPolicy="Replace"), [busy], {}, CONFIG, NOW)
    assert replace.delete_jobs == ["sync-29000000"] and len(replace.create_jobs) == 1
    assert replace.updates["counts"]["cancelled"] == 1
    # A retry running under Forbid holds the CronJob, which does not see it.
    retry = running("sync-r1", trigger="Retry")
    holding = track(schedule(), spec(), [retry], {}, CONFIG, NOW)
    assert holding.hold_cronjob
    assert not track(
        schedule(), spec(concurrencyPolicy="Allow"), [retry], {}, CONFIG, NOW
    ).hold_cronjob


def test_run_now_respects_suspend_forbid_and_the_manual_cap() -> None:
    ask = {"cronfleet.io/run-now": "go"}
    refused = track(schedule(annotations=ask), spec(suspend=True), [], {}, CONFIG, NOW)
    assert refused.create_jobs == [] and [e.reason for e in refused.events] == ["RunNowRefused"]
    busy = running("sync-29000000")
    started = track(schedule(), spec(), [busy], {}, CONFIG, NOW).updates
    waiting = track(schedule(started, annotations=ask), spec(), [busy], {}, CONFIG, NOW)
    assert waiting.create_jobs == [] and [e.reason for e in waiting.events] == ["RunNowDeferred"]
    later = track(
        schedule({**started, **waiting.updates}, annotations=ask), spec(), [], {}, CONFIG, NOW
    )
    assert [j["metadata"]["name"] for j in later.create_jobs] == [manual_job_name("sync", "go")]
    manual = [running(f"sync-m-{n}", trigger="Manual") for n in range(3)]
    many = track(schedule(), spec(concurrencyPolicy="Allow"), manual, {}, CONFIG, NOW).updates
    capped = track(
        schedule(many, annotations=ask), spec(concurrencyPolicy="Allow"), manual, {}, CONFIG, NOW
    )
    assert capped.create_jobs == []


def every_minute_job(fire: datetime) -> dict[str, Any]:
    body = job(
        f"sync-{int(fire.timestamp()) // 60}", "Succeeded", finished=fire + timedelta(seconds=5)
    )
    body["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] = to_rfc3339(
        fire
    )
    return body


def test_runs_whose_jobs_and_history_were_trimmed_are_not_missed() -> None:
    policy = spec(cron="* * * * *", history={"keep": 1, "successfulJobs": 1})
    start = NOW - timedelta(minutes=10)
    status: dict[str, Any] = {"missedRunsCheckedUntil": to_rfc3339(start)}
    # Each minute the Job is seen once, then the CronJob's limit deletes it.
    for minute in range(1, 10):
        fire = start + timedelta(minutes=minute)
        out = track(
            schedule(status),
            policy,
            [every_minute_job(fire)],
            {},
            CONFIG,
            fire + timedelta(seconds=6),
        )
        status.update(out.updates)
        assert out.missed == []
    final = track(schedule(status), policy, [], {}, CONFIG, NOW + timedelta(minutes=6))
    assert [m.scheduled_time for m in final.missed] == [
        to_rfc3339(start + timedelta(minutes=m)) for m in range(10, 10 + 1)
    ]


def test_a_cron_change_judges_only_the_expression_in_force() -> None:
    status = {"missedRunsCheckedUntil": to_rfc3339(NOW - timedelta(hours=1))}
    changed = schedule(status)
    changed["metadata"]["generation"] = 2
    out = track(changed, spec(cron="* * * * *"), [], {}, CONFIG, NOW)
    assert out.missed == [] and out.updates["missedRunsCheckedUntil"] == to_rfc3339(NOW)


def test_the_landed_versions_status_and_jobs_are_read_without_recounting() -> None:
    """A status and a recorded Job as the previous release wrote them."""
    fixture = Path(__file__).parents[1] / "fixtures" / "landed-0.1-failing-schedule.json"
    body = json.loads(fixture.read_text())
    recorded = job("sync-m-1f3a9c2e", "Failed", trigger="Manual")
    recorded["metadata"]["annotations"]["cronfleet.io/recorded"] = "true"
    out = track(body, spec(), [recorded], {}, CONFIG, NOW)
    assert out.updates["counts"] == {"succeeded": 4, "failed": 1, "cancelled": 0, "missed": 0}
    assert out.finished == [] and out.create_jobs[0]["metadata"]["name"] == retry_job_name(
        "sync", "sync-m-1f3a9c2e", 1
    )
    assert out.updates["history"][0]["result"] == "Failed"


# -- cadences the operator runs itself -------------------------------------------------


def created_at(body: dict[str, Any], when: datetime) -> dict[str, Any]:
    body["metadata"]["creationTimestamp"] = to_rfc3339(when)
    return body


def test_an_interval_fire_time_starts_one_deterministic_job() -> None:
    every = spec(cron=None, every="15s")
    body = created_at(schedule(), NOW - timedelta(seconds=20))
    out = track(body, every, [], {}, CONFIG, NOW)
    [run] = out.create_jobs
    fire = NOW - timedelta(seconds=5)
    assert run["metadata"]["name"] == f"sync-{int(fire.timestamp())}"
    assert run["metadata"]["annotations"]["cronfleet.io/trigger"] == "Scheduled"
    assert run["metadata"]["annotations"]["cronfleet.io/scheduled-time"] == to_rfc3339(fire)
    assert out.updates["lastRunTime"] == to_rfc3339(fire)
    assert out.requeue_at == fire + timedelta(seconds=15)
    # The same state again (a restart, a second reconcile) starts nothing more.
    again = track(
        created_at(schedule(out.updates), NOW - timedelta(seconds=20)), every, [], {}, CONFIG, NOW
    )
    assert again.create_jobs == []


def test_an_interval_run_too_late_is_not_started_and_forbid_waits() -> None:
    every = spec(cron=None, every="1h", startingDeadlineSeconds=60)
    late = created_at(schedule(), NOW - timedelta(hours=1, minutes=5))
    out = track(late, every, [], {}, CONFIG, NOW)
    assert out.updates["lastRunTime"] == to_rfc3339(NOW - timedelta(minutes=5))
    # Not started as a scheduled run; catchUp Latest (the default) runs it once.
    [caught] = out.create_jobs
    assert caught["metadata"]["annotations"]["cronfleet.io/trigger"] == "CatchUp"
    none = track(
        late,
        spec(cron=None, every="1h", startingDeadlineSeconds=60, catchUp={"policy": "None"}),
        [],
        {},
        CONFIG,
        NOW,
    )
    assert none.create_jobs == []
    busy = running("sync-m-1", trigger="Manual")
    status = track(schedule(), spec(), [busy], {}, CONFIG, NOW).updates
    waiting = track(
        created_at(schedule(status), NOW - timedelta(hours=1)), every, [busy], {}, CONFIG, NOW
    )
    assert waiting.create_jobs == [] and waiting.updates["lastRunTime"] is None


def test_max_runs_counts_scheduled_runs_only() -> None:
    every = spec(cron=None, every="15s", maxRuns=1)
    ran = job("sync-1", "Succeeded")
    manual = job("sync-m-1", "Succeeded", trigger="Manual")
    body = created_at(schedule(), NOW - timedelta(minutes=5))
    out = track(body, every, [ran, manual], {}, CONFIG, NOW)
    assert out.updates["scheduledRuns"] == 1 and out.create_jobs == []


# -- catch-up and backfill ---------------------------------------------------------------


def test_a_fire_time_missed_in_an_outage_is_caught_up_once_with_latest() -> None:
    checked = {"missedRunsCheckedUntil": to_rfc3339(NOW - timedelta(hours=2, minutes=30))}
    # 08:00 and 09:00 were missed (nothing ran); 09:00 is the latest.
    out = track(schedule(checked), spec(), [], {}, CONFIG, NOW)
    assert [m.scheduled_time for m in out.missed] == [
        "2026-11-24T08:00:00Z",
        "2026-11-24T09:00:00Z",
    ]
    assert [q["scheduledTime"] for q in out.updates["queuedRuns"]] == ["2026-11-24T09:00:00Z"]
    assert "CatchUpQueued" in [e.reason for e in out.events]
    start = track(schedule({**checked, **out.updates}), spec(), [], {}, CONFIG, NOW)
    [run] = start.create_jobs
    assert run["metadata"]["name"] == catch_up_job_name("sync", "2026-11-24T09:00:00Z")
    assert run["metadata"]["annotations"]["cronfleet.io/trigger"] == "CatchUp"
    env = {
        e["name"]: e.get("value") for e in run["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["CRONFLEET_SCHEDULED_TIME"] == "2026-11-24T09:00:00Z"
    assert start.updates["queuedRuns"] == []


def test_catch_up_all_runs_each_missed_time_and_none_only_reports() -> None:
    checked = {"missedRunsCheckedUntil": to_rfc3339(NOW - timedelta(hours=2, minutes=30))}
    every_one = track(
        schedule(checked),
        spec(catchUp={"policy": "All", "windowSeconds": 10800}),
        [],
        {},
        CONFIG,
        NOW,
    )
    assert len(every_one.updates["queuedRuns"]) == 2
    only_reported = track(schedule(checked), spec(catchUp={"policy": "None"}), [], {}, CONFIG, NOW)
    assert len(only_reported.missed) == 2 and only_reported.updates["queuedRuns"] == []
    outside = track(schedule(checked), spec(catchUp={"windowSeconds": 600}), [], {}, CONFIG, NOW)
    assert outside.updates["queuedRuns"] == []


def test_backfill_queues_each_fire_time_and_runs_them_one_at_a_time_under_forbid() -> None:
    policy = spec(cron="*/2 * * * *")
    value = "2026-11-23T10:00:00Z/2026-11-23T10:08:00Z"
    ask = {"cronfleet.io/backfill": value}
    out = track(schedule(annotations=ask), policy, [], {}, CONFIG, NOW)
    [first] = out.create_jobs
    assert first["metadata"]["name"] == backfill_job_name("sync", value, "2026-11-23T10:00:00Z")
    assert first["metadata"]["annotations"]["cronfleet.io/trigger"] == "Backfill"
    assert [q["scheduledTime"][11:16] for q in out.updates["queuedRuns"]] == [
        "10:02",
        "10:04",
        "10:06",
        "10:08",
    ]
    assert "BackfillQueued" in [e.reason for e in out.events]
    busy = running(first["metadata"]["name"], trigger="Backfill")
    waiting = track(schedule(out.updates, annotations=ask), policy, [busy], {}, CONFIG, NOW)
    assert waiting.create_jobs == []  # Forbid: one after another
    refused = track(
        schedule(annotations={"cronfleet.io/backfill": "yesterday"}), policy, [], {}, CONFIG, NOW
    )
    assert [e.reason for e in refused.events] == ["BackfillRefused"]


def test_fire_times_after_max_runs_are_not_missed() -> None:
    status = {
        "missedRunsCheckedUntil": to_rfc3339(NOW - timedelta(hours=3)),
        "scheduledRuns": 2,
    }
    out = track(schedule(status), spec(maxRuns=2), [], {}, CONFIG, NOW)
    assert out.missed == [] and out.create_jobs == []


def test_interval_fire_times_while_paused_are_neither_run_nor_caught_up() -> None:
    every = spec(cron=None, every="1h", startingDeadlineSeconds=60)
    body = created_at(schedule(), NOW - timedelta(hours=3, minutes=5))
    paused = track(body, spec(cron=None, every="1h", suspend=True), [], {}, CONFIG, NOW)
    assert paused.create_jobs == []
    assert paused.updates["lastRunTime"] == to_rfc3339(NOW - timedelta(minutes=5))
    resumed = created_at(schedule(paused.updates), NOW - timedelta(hours=3, minutes=5))
    resumed["metadata"]["generation"] = 2
    out = track(resumed, every, [], {}, CONFIG, NOW)
    assert out.create_jobs == [] and out.updates["queuedRuns"] == []


def test_a_job_with_no_pod_and_no_failed_create_event_is_blocked_only_after_a_minute() -> None:
    # A busy controller-manager creates pods late; that alone is no alarm.
    slow = running("sync-29000000", created=NOW - timedelta(seconds=20))
    waiting = track(schedule(), spec(), [slow], {}, CONFIG, NOW)
    assert waiting.blocked is None
    assert [e.reason for e in waiting.events] == ["RunStarted"]
    assert waiting.requeue_at == NOW + timedelta(seconds=41)
    stopped = running("sync-29000000", created=NOW - timedelta(seconds=61))
    out = track(schedule(), spec(), [stopped], {}, CONFIG, NOW)
    assert out.blocked is not None and out.blocked.reason == "PodNotCreated"
    assert "kube-controller-manager" in out.blocked.message


def cronjob_run(name: str, fire: datetime) -> dict[str, Any]:
    body = running(name, created=fire)
    body["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] = to_rfc3339(
        fire
    )
    return body


def test_a_cronjob_run_for_a_fire_time_outside_the_window_is_stopped_and_not_counted() -> None:
    # Resumed at startTime, the CronJob controller starts the fire time it
    # missed while suspended: 10:00, before a startTime of 10:00:30.
    window = spec(
        cron="* * * * *",
        startTime=to_rfc3339(NOW + timedelta(seconds=30)),
        endTime=to_rfc3339(NOW + timedelta(minutes=3)),
        maxRuns=5,
    )
    early = cronjob_run("sync-29000000", NOW)
    out = track(schedule(), window, [early], {}, CONFIG, NOW + timedelta(seconds=31))
    assert out.delete_jobs == ["sync-29000000"]
    assert out.updates["history"] == [] and out.updates["scheduledRuns"] == 0
    [event] = out.events
    assert (event.type, event.reason) == ("Warning", "RunOutsideWindow")
    assert "before startTime 2026-11-24T10:00:30Z" in event.message
    again = track(schedule(out.updates), window, [early], {}, CONFIG, NOW + timedelta(seconds=32))
    assert again.events == [] and again.delete_jobs == []

    inside = cronjob_run("sync-29000001", NOW + timedelta(minutes=1))
    kept = track(
        schedule(out.updates), window, [early, inside], {}, CONFIG, NOW + timedelta(minutes=1)
    )
    assert kept.delete_jobs == [] and kept.updates["scheduledRuns"] == 1
    assert [entry["job"] for entry in kept.updates["history"]] == ["sync-29000001"]

    late = cronjob_run("sync-29000003", NOW + timedelta(minutes=3))
    ended = track(schedule(kept.updates), window, [late], {}, CONFIG, NOW + timedelta(minutes=3))
    assert ended.delete_jobs == ["sync-29000003"]
    assert "at or after endTime" in ended.events[0].message


def test_a_recorded_mark_set_by_someone_else_on_a_running_run_does_not_hide_its_failure() -> None:
    running_run = running("sync-29000000", created=NOW - timedelta(seconds=40))
    started = track(schedule(), spec(retry={"maxRetries": 0}), [running_run], {}, CONFIG, NOW)
    failed = job("sync-29000000", "Failed")
    failed["metadata"]["annotations"]["cronfleet.io/recorded"] = "true"  # forged
    out = track(schedule(started.updates), spec(retry={"maxRetries": 0}), [failed], {}, CONFIG, NOW)
    assert out.updates["counts"]["failed"] == 1
    assert [e.reason for e in out.events if e.type == "Warning"][:1] == ["RunFailed"]
