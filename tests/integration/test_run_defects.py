"""Run-tracking defects found by outside checks, each shown on the real control plane:
Continue retries every failing run, runs that cannot start are reported and
failed as Blocked, runs whose Job disappears end Cancelled, and history limits
never produce false missed runs."""

from __future__ import annotations

import time
from typing import Any

from cronfleet_devcluster.kube import JOBS, SCHEDULES, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_runs import NEVER, finished_runs, history, reasons, run_now
from tests.integration.test_schedules import events_for, schedule, status_of, wait_phase

FAIL = {"argv": ["sh", "-c", "exit 1"]}


def entry_of(cluster: Cluster, namespace: str, name: str, job: str) -> Object | None:
    for run in history(cluster, namespace, name):
        if run["job"] == job:
            found: Object = run
            return found
    return None


def test_continue_retries_every_failing_run(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    spec: dict[str, Any] = {
        "cron": NEVER,
        "task": "command",
        "params": FAIL,
        "retry": {
            "maxRetries": 1,
            "onExhausted": "Continue",
            "backoff": {"initialDelaySeconds": 1, "maxDelaySeconds": 1},
        },
    }
    cluster.kube.create(SCHEDULES, schedule("flaky", **spec), namespace)
    wait_phase(cluster, namespace, "flaky", "Active")
    for number, token in enumerate(["one", "two", "three"], start=1):
        run_now(cluster, namespace, "flaky", token)
        # Each failing run and its one retry: two more finished runs.
        finished_runs(cluster, namespace, "flaky", 2 * number, timeout=90)
    runs = history(cluster, namespace, "flaky")
    retries = [run for run in runs if run["trigger"] == "Retry"]
    assert len(retries) == 3, runs
    third_manual = next(run for run in runs if run["trigger"] == "Manual")  # newest first
    assert any(run.get("scheduledTime") == third_manual.get("scheduledTime") for run in retries)
    status = status_of(cluster, namespace, "flaky")
    assert status["phase"] == "Failed" and status["counts"]["failed"] == 6
    assert status.get("nextRetryTime") is None
    # Events are posted right after the status write that records the run.
    eventually(
        lambda: reasons(cluster, namespace, "flaky").count("RetriesExhausted") == 3,
        timeout=15,
        what="three RetriesExhausted events",
    )


def test_a_missing_secret_is_reported_at_once_and_fails_the_run_as_blocked(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    env = [
        {
            "name": "TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "does-not-exist", "key": "token"}},
        }
    ]
    spec: dict[str, Any] = {
        "cron": NEVER,
        "task": "sleep",
        "params": {"seconds": 0},
        "env": env,
        "startTimeoutSeconds": 20,
        "retry": {"maxRetries": 0},
    }
    cluster.kube.create(SCHEDULES, schedule("needs-secret", **spec), namespace)
    wait_phase(cluster, namespace, "needs-secret", "Active")
    asked = time.monotonic()
    run_now(cluster, namespace, "needs-secret", "go")

    def blocked_event() -> Object | None:
        for event in events_for(cluster, namespace, "needs-secret"):
            if event["reason"] == "RunBlocked":
                found: Object = event
                return found
        return None

    event = eventually(blocked_event, timeout=15, interval=0.5, what="a RunBlocked event")
    reported_after = time.monotonic() - asked
    assert event["type"] == "Warning"
    assert "CreateContainerConfigError" in event["message"]
    assert "does-not-exist" in event["message"]
    status = status_of(cluster, namespace, "needs-secret")
    blocked = next(c for c in status["conditions"] if c["type"] == "RunBlocked")
    assert blocked["status"] == "True" and blocked["reason"] == "CreateContainerConfigError"
    running = history(cluster, namespace, "needs-secret")[0]
    assert running["reason"] == "CreateContainerConfigError" and not running.get("result")

    [run] = finished_runs(cluster, namespace, "needs-secret", 1, timeout=60)
    assert (run["result"], run["reason"]) == ("Failed", "Blocked")
    assert "startTimeoutSeconds" in run["message"]
    status = status_of(cluster, namespace, "needs-secret")
    assert status["counts"]["failed"] == 1
    cleared = next(c for c in status["conditions"] if c["type"] == "RunBlocked")
    assert cleared["status"] == "False"
    # The Job is stopped, so it cannot start after it was counted as failed.
    eventually(
        lambda: cluster.kube.get_or_none(JOBS, run["job"], namespace) is None,
        timeout=30,
        what="the blocked Job deleted",
    )
    print(f"RunBlocked reported {reported_after:.1f}s after run-now")


def test_a_job_deleted_mid_run_is_cancelled_not_retried(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    spec: dict[str, Any] = {"cron": NEVER, "task": "sleep", "params": {"seconds": 120}}
    cluster.kube.create(SCHEDULES, schedule("long", **spec), namespace)
    wait_phase(cluster, namespace, "long", "Active")
    run_now(cluster, namespace, "long", "go")
    started = eventually(
        lambda: history(cluster, namespace, "long") or None, timeout=30, what="the run"
    )
    job = started[0]["job"]
    cluster.kubectl("delete", "job", job, "-n", namespace, "--wait=false")
    [run] = finished_runs(cluster, namespace, "long", 1, timeout=30)
    assert (run["result"], run["reason"]) == ("Cancelled", "Deleted")
    status = status_of(cluster, namespace, "long")
    assert status["counts"]["cancelled"] == 1 and status["counts"]["failed"] == 0
    assert status.get("retryCount", 0) == 0 and status.get("nextRetryTime") is None
    eventually(
        lambda: "RunCancelled" in reasons(cluster, namespace, "long"),
        timeout=15,
        what="the RunCancelled event",
    )


def test_busy_schedules_with_short_history_report_no_missed_runs_and_replace_cancels(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """Twenty every-minute Schedules whose Jobs and history entries are trimmed at
    once run for six minutes: every fire time ran, so none is missed. Beside them,
    a Replace Schedule whose run outlasts the minute has that run replaced."""
    names = [f"busy-{index:02d}" for index in range(20)]
    for name in names:
        spec: dict[str, Any] = {
            "cron": "* * * * *",
            "task": "sleep",
            "params": {"seconds": 0},
            "history": {"keep": 2, "successfulJobs": 1, "failedJobs": 1},
        }
        cluster.kube.create(SCHEDULES, schedule(name, **spec), namespace)
    replace: dict[str, Any] = {
        "cron": "* * * * *",
        "task": "sleep",
        "params": {"seconds": 600},
        "concurrencyPolicy": "Replace",
    }
    cluster.kube.create(SCHEDULES, schedule("replaced", **replace), namespace)
    for name in [*names, "replaced"]:
        wait_phase(cluster, namespace, name, "Active")

    time.sleep(6 * 60)

    missed: dict[str, int] = {}
    succeeded: dict[str, int] = {}
    for name in names:
        status = status_of(cluster, namespace, name)
        missed[name] = len(status.get("missedRuns") or []) + int(
            status.get("counts", {}).get("missed", 0)
        )
        succeeded[name] = int(status.get("counts", {}).get("succeeded", 0))
    assert sum(missed.values()) == 0, missed
    assert all(count >= 5 for count in succeeded.values()), succeeded
    events = {e["reason"] for name in names for e in events_for(cluster, namespace, name)}
    assert "MissedRun" not in events

    runs = history(cluster, namespace, "replaced")
    cancelled = [run for run in runs if run.get("result") == "Cancelled"]
    assert cancelled, runs
    assert all(run["reason"] == "Replaced" for run in cancelled)
    assert status_of(cluster, namespace, "replaced")["counts"]["cancelled"] == len(cancelled)
