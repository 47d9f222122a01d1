"""How far a run-now token got, from the status alone; and what `logs` picks."""

from __future__ import annotations

from typing import Any

import pytest

from cronfleet.plugin.kubeconfig import PluginError
from cronfleet.plugin.logs import gone_message, newest_pod, pick_run
from cronfleet.plugin.manualruns import Stage, progress
from cronfleet.runs import retry_job_name


def schedule(manual: list[dict[str, Any]], history: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "sync"}, "status": {"manualRuns": manual, "history": history}}


def test_before_the_operator_acts_the_token_is_requested() -> None:
    current = progress(schedule([], []), "t1")
    assert current.stage is Stage.REQUESTED and current.exit_code is None


def test_refused_ends_with_2_and_says_why() -> None:
    entry = {"token": "t1", "state": "Refused", "message": "the schedule is paused"}
    current = progress(schedule([entry], []), "t1")
    assert (current.stage, current.message, current.exit_code) == (
        Stage.REFUSED,
        "the schedule is paused",
        2,
    )


def test_deferred_and_running_keep_waiting() -> None:
    deferred = progress(
        schedule([{"token": "t1", "state": "Deferred", "message": "busy"}], []), "t1"
    )
    assert deferred.stage is Stage.DEFERRED and deferred.exit_code is None
    started = {"token": "t1", "state": "Started", "job": "sync-m-1"}
    running = progress(schedule([started], [{"job": "sync-m-1"}]), "t1")
    assert (running.stage, running.job, running.exit_code) == (Stage.RUNNING, "sync-m-1", None)


@pytest.mark.parametrize(
    ("result", "code"), [("Succeeded", 0), ("Failed", 1), ("TimedOut", 1), ("Cancelled", 1)]
)
def test_a_finished_run_ends_by_its_result(result: str, code: int) -> None:
    started = {"token": "t1", "state": "Started", "job": "sync-m-1"}
    other = {"token": "t0", "state": "Started", "job": "sync-m-0"}
    history = [
        {"job": "sync-m-1", "result": result, "message": "m"},
        {"job": "sync-m-0", "result": "Succeeded"},
    ]
    current = progress(schedule([started, other], history), "t1")
    assert (current.stage, current.exit_code, current.message) == (Stage.FINISHED, code, "m")


def test_logs_pick_the_newest_run_or_the_one_asked_for() -> None:
    body = schedule([], [{"job": "sync-2"}, {"job": "sync-1"}])
    assert pick_run(body, None) == "sync-2"
    assert pick_run(body, "sync-1") == "sync-1"
    with pytest.raises(PluginError, match='schedule "sync" has no runs yet'):
        pick_run(schedule([], []), None)


def test_a_gone_log_says_what_the_status_still_knows() -> None:
    body = schedule([], [{"job": "sync-1", "result": "Failed", "message": "HTTP 503"}])
    text = gone_message(body, "sync-1", "its Job was deleted")
    assert text.startswith("the log of run sync-1 is gone: its Job was deleted")
    assert text.endswith("; the status keeps its summary: Failed: HTTP 503")
    assert gone_message(body, "sync-9", "x").endswith(
        "no run sync-9 is in the status history either"
    )


def test_the_newest_pod_is_read() -> None:
    pods = [
        {"metadata": {"name": "a", "creationTimestamp": "2026-11-30T10:00:00+00:00"}},
        {"metadata": {"name": "b", "creationTimestamp": "2026-11-30T11:00:00+00:00"}},
    ]
    assert newest_pod(pods) == pods[1]
    assert newest_pod([]) is None


def failed(job: str, attempt: int = 0, result: str = "Failed") -> dict[str, Any]:
    return {"job": job, "attempt": attempt, "result": result}


STARTED = {"token": "t1", "state": "Started", "job": "sync-m-1"}
RETRY_1 = retry_job_name("sync", "sync-m-1", 1)
RETRY_2 = retry_job_name("sync", "sync-m-1", 2)


def test_a_failed_run_with_a_retry_booked_is_not_the_end() -> None:
    body = schedule([STARTED], [failed("sync-m-1")])
    body["status"].update(retryOf="sync-m-1", retryCount=1, nextRetryTime="2026-11-30T10:00:30Z")
    current = progress(body, "t1")
    assert (current.stage, current.job, current.exit_code) == (Stage.RETRYING, "sync-m-1", None)


def test_a_retry_created_but_not_yet_in_the_history_is_waited_for() -> None:
    body = schedule([STARTED], [failed("sync-m-1")])
    body["status"].update(retryOf="sync-m-1", retryCount=1, nextRetryTime=None)
    assert progress(body, "t1").stage is Stage.RETRYING
    body["status"]["history"].insert(0, {"job": RETRY_1, "attempt": 1})
    assert (progress(body, "t1").stage, progress(body, "t1").job) == (Stage.RETRYING, RETRY_1)


def test_the_cycle_ends_with_its_last_try() -> None:
    history = [failed(RETRY_1, 1, "Succeeded"), failed("sync-m-1")]
    body = schedule([STARTED], history)
    current = progress(body, "t1")
    assert (current.stage, current.job, current.exit_code) == (Stage.FINISHED, RETRY_1, 0)
    # Retries exhausted: retryOf stays, nothing is booked.
    exhausted = schedule([STARTED], [failed(RETRY_2, 2), failed(RETRY_1, 1), failed("sync-m-1")])
    exhausted["status"].update(retryOf="sync-m-1", retryCount=2, nextRetryTime=None)
    current = progress(exhausted, "t1")
    assert (current.stage, current.job, current.exit_code) == (Stage.FINISHED, RETRY_2, 1)


def test_a_failure_the_policy_does_not_retry_ends_at_once() -> None:
    # Exit code 2, or retries turned off: no retry cycle names this run.
    body = schedule([STARTED], [failed("sync-m-1")])
    assert progress(body, "t1").exit_code == 1
