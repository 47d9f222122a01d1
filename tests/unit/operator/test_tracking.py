"""Run tracking decisions, replayed on hand-made Jobs and pods."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cronfleet.clock import to_rfc3339
from cronfleet.config import OperatorConfig
from cronfleet.models import Backoff, ScheduleSpec
from cronfleet.runs import manual_job_name, retry_delay, retry_job_name, scheduled_time
from cronfleet.tracking import track

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
    assert out.updates["counts"] == {"succeeded": 0, "failed": 1}
    entry = out.updates["history"][0]
    assert (entry["result"], entry["exitCode"], entry["message"]) == ("Failed", 1, "boom")
    assert [e.reason for e in out.events] == ["RunFailed", "RetryScheduled"]
    assert out.recorded == ["sync-29000000"]

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
