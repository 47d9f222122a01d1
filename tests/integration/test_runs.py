"""Runs, really executed by the runner through the local node agent: history,
retries with backoff, the Failed state, reset, run-now, timeouts, permanent
failures, crash safety, missed runs and metrics."""

from __future__ import annotations

import time
import urllib.request
from datetime import datetime
from typing import Any

import pytest

from cronfleet_devcluster.e2e import scrape_metrics
from cronfleet_devcluster.kube import CRONJOBS, JOBS, SCHEDULES, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_schedules import events_for, schedule, status_of, wait_phase

NEVER = "0 0 1 1 *"  # runs here come from run-now and retries, not the clock


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_now(cluster: Cluster, namespace: str, name: str, token: str) -> None:
    cluster.kubectl(
        "annotate",
        "schedule",
        name,
        "-n",
        namespace,
        "--overwrite",
        f"cronfleet.io/run-now={token}",
    )


def history(cluster: Cluster, namespace: str, name: str) -> list[Object]:
    items: list[Object] = status_of(cluster, namespace, name).get("history") or []
    return items


def finished_runs(
    cluster: Cluster, namespace: str, name: str, count: int, timeout: float = 90
) -> list[Object]:
    def probe() -> list[Object] | None:
        done = [run for run in history(cluster, namespace, name) if run.get("result")]
        return done if len(done) >= count else None

    return eventually(probe, timeout=timeout, interval=0.5, what=f"{count} finished runs of {name}")


def missed_runs(cluster: Cluster, namespace: str, name: str, timeout: float) -> list[Object]:
    def probe() -> list[Object] | None:
        items: list[Object] = status_of(cluster, namespace, name).get("missedRuns") or []
        return items or None

    return eventually(probe, timeout=timeout, interval=1, what=f"a missed run of {name}")


def reasons(cluster: Cluster, namespace: str, name: str) -> list[str]:
    return [event["reason"] for event in events_for(cluster, namespace, name)]


def scrape(operator: OperatorProcess) -> str:
    if operator.metrics_token:
        # The chart's operator (make e2e): HTTPS, a self-signed certificate, a token.
        return scrape_metrics(operator.metrics_url, operator.metrics_token, timeout=10)
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as response:
        text: str = response.read().decode()
        return text


def sample(metrics: str, name: str, **labels: str) -> float:
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def attempt_script(succeed_on: int) -> list[str]:
    """A command that fails until its n-th run of a cycle (the first run is attempt 0).

    It reads the attempt the operator hands every run: a run's pod shares no
    files with the last one on a real node, so a counter on disk would not do.
    """
    script = f'n=$((CRONFLEET_ATTEMPT + 1)); echo "attempt $n" >&2; [ "$n" -ge {succeed_on} ]'
    return ["sh", "-c", script]


def test_fails_twice_then_succeeds(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    spec: dict[str, Any] = {
        "cron": NEVER,
        "task": "command",
        "params": {"argv": attempt_script(succeed_on=3)},
        "retry": {
            "maxRetries": 3,
            "backoff": {"initialDelaySeconds": 3, "factor": 2, "maxDelaySeconds": 10},
        },
    }
    cluster.kube.create(SCHEDULES, schedule("flaky", **spec), namespace)
    wait_phase(cluster, namespace, "flaky", "Active")
    run_now(cluster, namespace, "flaky", "first")

    seen: list[int] = []

    def watch_retry_count() -> bool:
        status = status_of(cluster, namespace, "flaky")
        count = status.get("retryCount", 0)
        if not seen or seen[-1] != count:
            seen.append(count)
        done = [run for run in status.get("history") or [] if run.get("result")]
        return len(done) == 3

    eventually(watch_retry_count, timeout=120, interval=0.2, what="three finished runs")
    assert seen == [0, 1, 2, 0]
    runs = list(reversed(history(cluster, namespace, "flaky")))  # oldest first
    assert [(r["trigger"], r["attempt"], r["result"]) for r in runs] == [
        ("Manual", 0, "Failed"),
        ("Retry", 1, "Failed"),
        ("Retry", 2, "Succeeded"),
    ]
    assert [r["exitCode"] for r in runs] == [1, 1, 0]
    assert "attempt 1" in runs[0]["message"]
    # Backoff: retry n starts 3 * 2^(n-1) seconds after the failure (1 s timestamps).
    for previous, retry, delay in ((runs[0], runs[1], 3), (runs[1], runs[2], 6)):
        gap = (ts(retry["startTime"]) - ts(previous["completionTime"])).total_seconds()
        assert delay - 1 <= gap <= delay + 4, (delay, gap)
    status = status_of(cluster, namespace, "flaky")
    assert status["counts"] == {"succeeded": 1, "failed": 2, "cancelled": 0, "missed": 0}
    assert status["consecutiveFailures"] == 0 and status.get("nextRetryTime") is None
    assert status["lastSuccessfulTime"] == runs[2]["completionTime"]
    found = reasons(cluster, namespace, "flaky")
    assert found.count("RunFailed") == 2 and found.count("RetryScheduled") == 2
    assert found.count("RunSucceeded") == 1 and "RunStarted" in found
    metrics = scrape(operator)
    labels = {"namespace": namespace, "schedule": "flaky"}
    assert sample(metrics, "cronfleet_runs_total", **labels, trigger="Manual", result="Failed") == 1
    assert sample(metrics, "cronfleet_runs_total", **labels, trigger="Retry", result="Failed") == 1
    assert (
        sample(metrics, "cronfleet_runs_total", **labels, trigger="Retry", result="Succeeded") == 1
    )
    assert sample(metrics, "cronfleet_retries_total", **labels) == 2
    assert sample(metrics, "cronfleet_run_duration_seconds_count", **labels) == 3
    assert sample(metrics, "cronfleet_schedule_last_success_timestamp_seconds", **labels) > 0


def test_always_failing_becomes_failed_and_reset_resumes(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    spec: dict[str, Any] = {
        "cron": "*/5 * * * *",
        "task": "sleep",
        "params": {"seconds": 0, "exitCode": 1, "message": "upstream down"},
        "retry": {
            "maxRetries": 2,
            "backoff": {"initialDelaySeconds": 1, "factor": 1, "maxDelaySeconds": 1},
        },
    }
    cluster.kube.create(SCHEDULES, schedule("doomed", **spec), namespace)
    wait_phase(cluster, namespace, "doomed", "Active")
    run_now(cluster, namespace, "doomed", "go")
    failed = eventually(
        lambda: (s := status_of(cluster, namespace, "doomed")).get("phase") == "Failed" and s,
        timeout=90,
        interval=0.5,
        what="phase Failed",
    )
    assert failed["retryCount"] == 2
    assert failed["conditions"][0]["reason"] == "RetriesExhausted"
    assert failed.get("nextRunTime") is None
    runs = finished_runs(cluster, namespace, "doomed", 3)
    assert {run["message"] for run in runs} == {"upstream down"}
    assert cluster.kube.get(CRONJOBS, "doomed", namespace)["spec"]["suspend"] is True
    exhausted = [
        e for e in events_for(cluster, namespace, "doomed") if e["reason"] == "RetriesExhausted"
    ]
    assert len(exhausted) == 1 and exhausted[0]["type"] == "Warning"
    time.sleep(3)
    assert len(finished_runs(cluster, namespace, "doomed", 3)) == 3  # no fourth try

    cluster.kubectl("annotate", "schedule", "doomed", "-n", namespace, "cronfleet.io/reset=1")
    active = eventually(
        lambda: (s := status_of(cluster, namespace, "doomed")).get("phase") == "Active" and s,
        timeout=30,
        what="phase Active after reset",
    )
    assert active["retryCount"] == 0 and active["consecutiveFailures"] == 0
    assert active["nextRunTime"]
    eventually(
        lambda: cluster.kube.get(CRONJOBS, "doomed", namespace)["spec"]["suspend"] is False,
        timeout=15,
        what="CronJob resumed",
    )


def test_exit_code_two_is_not_retried(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    spec: dict[str, Any] = {
        "cron": NEVER,
        "task": "sleep",
        "params": {"seconds": 0, "exitCode": 2},
        "retry": {"maxRetries": 3, "backoff": {"initialDelaySeconds": 1}},
    }
    cluster.kube.create(SCHEDULES, schedule("permanent", **spec), namespace)
    wait_phase(cluster, namespace, "permanent", "Active")
    run_now(cluster, namespace, "permanent", "once")
    run = finished_runs(cluster, namespace, "permanent", 1)[0]
    assert (run["result"], run["exitCode"]) == ("Failed", 2)
    time.sleep(4)  # longer than the backoff: a retry would have started
    status = status_of(cluster, namespace, "permanent")
    assert len(status["history"]) == 1 and status["retryCount"] == 0
    assert status.get("nextRetryTime") is None and status["phase"] == "Active"
    assert len(cluster.kube.items(JOBS, namespace)) == 1


def test_run_exceeding_timeout_is_timed_out(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    spec: dict[str, Any] = {
        "cron": NEVER,
        "task": "sleep",
        "params": {"seconds": 60},
        "timeoutSeconds": 3,
        "retry": {"maxRetries": 0},
    }
    cluster.kube.create(SCHEDULES, schedule("slow", **spec), namespace)
    wait_phase(cluster, namespace, "slow", "Active")
    run_now(cluster, namespace, "slow", "go")
    run = finished_runs(cluster, namespace, "slow", 1, timeout=60)[0]
    assert run["result"] == "TimedOut"
    assert run["durationSeconds"] < 30


def test_run_now_once_per_token(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    spec: dict[str, Any] = {"cron": NEVER, "task": "sleep", "params": {"seconds": 0}}
    cluster.kube.create(SCHEDULES, schedule("manual", **spec), namespace)
    before = wait_phase(cluster, namespace, "manual", "Active")
    run_now(cluster, namespace, "manual", "a")
    finished_runs(cluster, namespace, "manual", 1)
    run_now(cluster, namespace, "manual", "a")  # the same token again
    time.sleep(3)
    assert len(history(cluster, namespace, "manual")) == 1
    run_now(cluster, namespace, "manual", "b")
    runs = finished_runs(cluster, namespace, "manual", 2)
    assert [run["trigger"] for run in runs] == ["Manual", "Manual"]
    assert len(cluster.kube.items(JOBS, namespace)) == 2
    # A manual run does not move the next scheduled run.
    assert status_of(cluster, namespace, "manual")["nextRunTime"] == before["nextRunTime"]


def test_operator_killed_around_a_retry_runs_it_exactly_once(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    operator.require_local()
    spec: dict[str, Any] = {
        "cron": NEVER,
        "task": "command",
        "params": {"argv": attempt_script(succeed_on=2)},
        "retry": {
            "maxRetries": 3,
            "backoff": {"initialDelaySeconds": 6, "factor": 1, "maxDelaySeconds": 6},
        },
    }
    cluster.kube.create(SCHEDULES, schedule("crashy", **spec), namespace)
    wait_phase(cluster, namespace, "crashy", "Active")
    run_now(cluster, namespace, "crashy", "go")
    pending = eventually(
        lambda: status_of(cluster, namespace, "crashy").get("nextRetryTime"),
        timeout=60,
        interval=0.2,
        what="a retry scheduled",
    )
    operator.kill()  # SIGKILL while the retry is pending
    while datetime.now().astimezone() < ts(pending):
        time.sleep(0.2)
    time.sleep(2)  # the retry was due while the operator was down
    operator.start()

    def retry_jobs() -> list[Object]:
        return [
            job
            for job in cluster.kube.items(JOBS, namespace)
            if job["metadata"]["annotations"].get("cronfleet.io/trigger") == "Retry"
        ]

    eventually(retry_jobs, timeout=30, interval=0.05, what="the retry Job")
    operator.kill()  # right after the retry Job was created
    operator.start()
    runs = finished_runs(cluster, namespace, "crashy", 2)
    time.sleep(3)
    assert len(retry_jobs()) == 1
    runs = history(cluster, namespace, "crashy")
    assert [(r["trigger"], r["result"]) for r in reversed(runs)] == [
        ("Manual", "Failed"),
        ("Retry", "Succeeded"),
    ]
    counts = status_of(cluster, namespace, "crashy")["counts"]
    assert counts == {"succeeded": 1, "failed": 1, "cancelled": 0, "missed": 0}


def test_forbid_overlap_is_a_missed_run(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    spec: dict[str, Any] = {
        "cron": "* * * * *",
        "task": "sleep",
        "params": {"seconds": 80},
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 10,
        "retry": {"maxRetries": 0},
    }
    cluster.kube.create(SCHEDULES, schedule("overlap", **spec), namespace)
    wait_phase(cluster, namespace, "overlap", "Active")

    misses = missed_runs(cluster, namespace, "overlap", timeout=200)
    assert "concurrencyPolicy is Forbid" in misses[0]["reason"]
    events = [e for e in events_for(cluster, namespace, "overlap") if e["reason"] == "MissedRun"]
    assert events and events[0]["type"] == "Warning"
    assert (
        sample(
            scrape(operator),
            "cronfleet_missed_runs_total",
            namespace=namespace,
            schedule="overlap",
            reason="concurrency_forbid",
        )
        >= 1
    )


def test_controller_down_across_a_fire_time_is_a_missed_run(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    if cluster.plane is None:
        pytest.skip("needs the local control plane: kube-controller-manager is stopped")
    spec: dict[str, Any] = {
        "cron": "* * * * *",
        "task": "sleep",
        "params": {"seconds": 0},
        "startingDeadlineSeconds": 10,
        "retry": {"maxRetries": 0},
    }
    cluster.kube.create(SCHEDULES, schedule("outage", **spec), namespace)
    status = wait_phase(cluster, namespace, "outage", "Active")
    fire = ts(status["nextRunTime"])
    if (fire - datetime.now().astimezone()).total_seconds() < 10:
        fire = ts(
            eventually(
                lambda: (
                    (n := status_of(cluster, namespace, "outage").get("nextRunTime"))
                    != status["nextRunTime"]
                    and n
                ),
                timeout=30,
            )
        )
    cluster.plane.stop_component("kube-controller-manager")
    try:
        while datetime.now().astimezone() < fire:
            time.sleep(0.5)
        time.sleep(16)  # past the starting deadline (10 s)
    finally:
        cluster.plane.start_component("kube-controller-manager")

    misses = missed_runs(cluster, namespace, "outage", timeout=60)
    assert ts(misses[-1]["scheduledTime"]) == fire
    assert "startingDeadlineSeconds" in misses[-1]["reason"]
    assert "MissedRun" in reasons(cluster, namespace, "outage")
    # catchUp Latest (the default): the missed fire time runs once on recovery.
    caught = eventually(
        lambda: (
            [
                run
                for run in history(cluster, namespace, "outage")
                if run["trigger"] == "CatchUp" and run.get("result")
            ]
            or None
        ),
        timeout=60,
        what="the catch-up run",
    )
    assert [ts(run["scheduledTime"]) for run in caught] == [fire]
    assert caught[0]["result"] == "Succeeded"


def test_metrics_endpoint_exports_every_series(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kube.create(SCHEDULES, schedule("observed"), namespace)
    wait_phase(cluster, namespace, "observed", "Active")
    text = scrape(operator)
    for name in (
        "cronfleet_schedules",
        "cronfleet_schedule_info",
        "cronfleet_schedule_next_run_timestamp_seconds",
        "cronfleet_schedule_retry_count",
        "cronfleet_schedule_consecutive_failures",
        "cronfleet_reconcile_duration_seconds_bucket",
        "cronfleet_reconcile_errors_total",
        "cronfleet_api_requests_total",
    ):
        assert f"\n{name}" in text, name
    assert sample(text, "cronfleet_schedules", namespace=namespace, phase="Active") == 1
    next_run = sample(
        text,
        "cronfleet_schedule_next_run_timestamp_seconds",
        namespace=namespace,
        schedule="observed",
    )
    assert next_run == ts(status_of(cluster, namespace, "observed")["nextRunTime"]).timestamp()
    for family in (
        "cronfleet_runs_total",
        "cronfleet_run_duration_seconds",
        "cronfleet_retries_total",
        "cronfleet_missed_runs_total",
        "cronfleet_manual_runs_total",
        "cronfleet_operator_runs_started_total",
    ):
        assert f"# TYPE {family} " in text, family


def test_run_events_failures_posts_no_routine_events_but_every_failure(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    operator.require_local()
    operator.extra_env["CRONFLEET_RUN_EVENTS"] = "failures"
    operator.restart()
    try:
        ok: dict[str, Any] = {"cron": NEVER, "task": "sleep", "params": {"seconds": 0}}
        failing: dict[str, Any] = {
            "cron": NEVER,
            "task": "command",
            "params": {"argv": ["sh", "-c", "exit 1"]},
        }
        cluster.kube.create(SCHEDULES, schedule("quiet", **ok), namespace)
        cluster.kube.create(SCHEDULES, schedule("loud", **failing), namespace)
        for name in ("quiet", "loud"):
            wait_phase(cluster, namespace, name, "Active")
            run_now(cluster, namespace, name, "a")
        [succeeded] = finished_runs(cluster, namespace, "quiet", 1)
        [failed] = finished_runs(cluster, namespace, "loud", 1)
        assert (succeeded["result"], failed["result"]) == ("Succeeded", "Failed")
        # The history has both runs; the events only the failure.
        eventually(
            lambda: "RunFailed" in reasons(cluster, namespace, "loud"),
            timeout=30,
            what="a RunFailed event",
        )
        assert "RunStarted" not in reasons(cluster, namespace, "loud")
        assert not {"RunStarted", "RunSucceeded"} & set(reasons(cluster, namespace, "quiet"))
    finally:
        del operator.extra_env["CRONFLEET_RUN_EVENTS"]
        operator.restart()
