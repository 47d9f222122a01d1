"""Pausing with the cronfleet.io/pause annotation, what run-now tokens led to,
and kubectl's own manual trigger (`kubectl create job --from=cronjob/X`)."""

from __future__ import annotations

from cronfleet_devcluster.kube import CRONJOBS, JOBS, SCHEDULES, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_runs import NEVER, finished_runs, reasons, run_now
from tests.integration.test_schedules import schedule, status_of, wait_phase


def manual_run(cluster: Cluster, namespace: str, name: str, token: str) -> Object:
    def probe() -> Object | None:
        for entry in status_of(cluster, namespace, name).get("manualRuns") or []:
            if entry["token"] == token:
                found: Object = entry
                return found
        return None

    return eventually(probe, timeout=30, interval=0.5, what=f"manualRuns entry for {token}")


def test_the_pause_annotation_suspends_without_touching_the_spec(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    body = schedule("nightly", cron=NEVER, task="sleep", params={"seconds": 0})
    created = cluster.kube.create(SCHEDULES, body, namespace)
    wait_phase(cluster, namespace, "nightly", "Active")

    cluster.kubectl(
        "annotate", "schedule", "nightly", "-n", namespace, "cronfleet.io/pause=db migration"
    )
    paused = wait_phase(cluster, namespace, "nightly", "Paused")
    assert paused["message"] == (
        "paused by cronfleet.io/pause: db migration; no runs until the annotation is removed"
    )
    assert paused.get("nextRunTime") is None
    eventually(
        lambda: cluster.kube.get(CRONJOBS, "nightly", namespace)["spec"]["suspend"] is True,
        timeout=30,
        what="the CronJob suspended",
    )
    # The spec did not change: a GitOps tool comparing it sees no drift.
    stored = cluster.kube.get(SCHEDULES, "nightly", namespace)
    assert stored["metadata"]["generation"] == 1 and stored["spec"] == created["spec"]
    assert stored["spec"]["suspend"] is False

    run_now(cluster, namespace, "nightly", "while-paused")
    refused = manual_run(cluster, namespace, "nightly", "while-paused")
    assert refused["state"] == "Refused" and "job" not in refused
    assert "paused (cronfleet.io/pause: db migration)" in refused["message"]
    assert cluster.kube.items(JOBS, namespace) == []

    cluster.kubectl("annotate", "schedule", "nightly", "-n", namespace, "cronfleet.io/pause-")
    wait_phase(cluster, namespace, "nightly", "Active")
    eventually(
        lambda: cluster.kube.get(CRONJOBS, "nightly", namespace)["spec"]["suspend"] is False,
        timeout=30,
        what="the CronJob resumed",
    )
    assert {"Suspended", "Resumed", "RunNowRefused"} <= set(reasons(cluster, namespace, "nightly"))

    run_now(cluster, namespace, "nightly", "after-resume")
    started = manual_run(cluster, namespace, "nightly", "after-resume")
    assert started["state"] == "Started"
    [run] = finished_runs(cluster, namespace, "nightly", 1)
    assert (run["job"], run["trigger"], run["result"]) == (started["job"], "Manual", "Succeeded")


def test_kubectl_create_job_from_the_cronjob_is_a_manual_run(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    body = schedule("report", cron=NEVER, task="sleep", params={"seconds": 0})
    cluster.kube.create(SCHEDULES, body, namespace)
    wait_phase(cluster, namespace, "report", "Active")
    cluster.kubectl("create", "job", "report-by-hand", "--from=cronjob/report", "-n", namespace)
    [run] = finished_runs(cluster, namespace, "report", 1)
    assert (run["job"], run["trigger"], run["result"]) == ("report-by-hand", "Manual", "Succeeded")
    status = status_of(cluster, namespace, "report")
    assert status["counts"]["succeeded"] == 1
    assert status.get("scheduledRuns", 0) == 0
