"""Cadences the operator runs itself, with tasks really run: intervals aligned to
startTime, one-time runs that complete and clean up, maxRuns, endTime, run-now
only, and no duplicate Job across an operator restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from cronfleet.clock import from_rfc3339, to_rfc3339
from cronfleet.validation import validate_spec
from cronfleet_devcluster.kube import CRONJOBS, JOBS, SCHEDULES, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_runs import finished_runs, history, run_now
from tests.integration.test_schedules import events_for, status_of, wait_phase

QUICK: dict[str, Any] = {"task": "sleep", "params": {"seconds": 0}}


def cadence_schedule(name: str, **spec: Any) -> Object:
    return {
        "apiVersion": "cronfleet.io/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name},
        "spec": {**QUICK, **spec},
    }


def soon(seconds: int) -> datetime:
    """A whole second a little ahead, so fire times are easy to tell apart."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)


def scheduled_jobs(cluster: Cluster, namespace: str) -> list[Object]:
    jobs = cluster.kube.items(JOBS, namespace)
    return [
        j for j in jobs if j["metadata"]["annotations"].get("cronfleet.io/trigger") == "Scheduled"
    ]


def test_every_runs_at_times_aligned_to_start_time(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    start = soon(10)
    body = cadence_schedule("drain", every="10s", startTime=to_rfc3339(start))
    cluster.kube.create(SCHEDULES, body, namespace)
    status = wait_phase(cluster, namespace, "drain", "Active")
    assert status["nextRunTime"] == to_rfc3339(start)
    assert status["scheduleDescription"].startswith("Every 10s, from ")
    assert cluster.kube.get_or_none(CRONJOBS, "drain", namespace) is None
    runs = finished_runs(cluster, namespace, "drain", 3, timeout=60)
    due = sorted(from_rfc3339(run["scheduledTime"]) for run in runs)
    assert due[:3] == [start + timedelta(seconds=10 * k) for k in range(3)]
    assert all(run["trigger"] == "Scheduled" and run["result"] == "Succeeded" for run in runs)
    names = [job["metadata"]["name"] for job in scheduled_jobs(cluster, namespace)]
    assert len(names) == len(set(names))
    assert f"drain-{int(start.timestamp())}" in names


def test_at_runs_once_completes_and_is_deleted_by_its_ttl(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    at = soon(12)
    body = cadence_schedule("escalate", at=to_rfc3339(at), ttlSecondsAfterCompleted=8)
    cluster.kube.create(SCHEDULES, body, namespace)
    status = wait_phase(cluster, namespace, "escalate", "Active")
    assert status["nextRunTime"] == to_rfc3339(at)
    done = wait_phase_long(cluster, namespace, "escalate", "Completed", timeout=60)
    [run] = [r for r in done["history"] if r.get("result")]
    assert run["result"] == "Succeeded" and run["scheduledTime"] == to_rfc3339(at)
    assert done.get("nextRunTime") is None and done["completionTime"]
    # The event is posted right after the status that says Completed.
    eventually(
        lambda: "Completed" in [e["reason"] for e in events_for(cluster, namespace, "escalate")],
        timeout=15,
        what="the Completed event",
    )
    eventually(
        lambda: cluster.kube.get_or_none(SCHEDULES, "escalate", namespace) is None,
        timeout=40,
        what="the Completed Schedule deleted by its TTL",
    )


def test_max_runs_and_end_time_stop_the_schedule(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    start = soon(5)
    cluster.kube.create(
        SCHEDULES,
        cadence_schedule("drip", every="10s", startTime=to_rfc3339(start), maxRuns=2),
        namespace,
    )
    cluster.kube.create(
        SCHEDULES,
        cadence_schedule(
            "campaign",
            every="10s",
            startTime=to_rfc3339(start),
            endTime=to_rfc3339(start + timedelta(seconds=15)),
        ),
        namespace,
    )
    drip = wait_phase_long(cluster, namespace, "drip", "Completed", timeout=60)
    assert drip["remainingRuns"] == 0 and drip["scheduledRuns"] == 2
    campaign = wait_phase_long(cluster, namespace, "campaign", "Completed", timeout=60)
    assert campaign["scheduledRuns"] == 2
    time.sleep(12)  # a fire time after both have ended
    for name in ("drip", "campaign"):
        runs = [r for r in history(cluster, namespace, name) if r["trigger"] == "Scheduled"]
        assert len(runs) == 2, (name, runs)


def test_a_schedule_without_cadence_runs_only_on_run_now(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kube.create(SCHEDULES, cadence_schedule("export"), namespace)
    status = wait_phase(cluster, namespace, "export", "Active")
    assert status["scheduleDescription"] == "Only when run manually"
    assert status.get("nextRunTime") is None
    assert cluster.kube.get_or_none(CRONJOBS, "export", namespace) is None
    time.sleep(5)
    assert history(cluster, namespace, "export") == []
    run_now(cluster, namespace, "export", "first")
    [run] = finished_runs(cluster, namespace, "export", 1, timeout=60)
    assert (run["trigger"], run["result"]) == ("Manual", "Succeeded")


def test_an_operator_restart_across_a_fire_time_starts_no_duplicate(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    operator.require_local()
    start = soon(4)
    body = cadence_schedule("steady", every="10s", startTime=to_rfc3339(start))
    cluster.kube.create(SCHEDULES, body, namespace)
    wait_phase(cluster, namespace, "steady", "Active")
    finished_runs(cluster, namespace, "steady", 1, timeout=60)
    operator.kill()
    operator.start()
    finished_runs(cluster, namespace, "steady", 3, timeout=90)
    jobs = scheduled_jobs(cluster, namespace)
    due = [j["metadata"]["annotations"]["cronfleet.io/scheduled-time"] for j in jobs]
    assert len(due) == len(set(due)), due


def wait_phase_long(
    cluster: Cluster, namespace: str, name: str, phase: str, timeout: float
) -> Object:
    def probe() -> Object | None:
        status = status_of(cluster, namespace, name)
        return status if status.get("phase") == phase else None

    return eventually(probe, timeout=timeout, interval=0.5, what=f"{name} phase {phase}")


def test_every_example_is_accepted_by_the_api_server(
    cluster: Cluster, namespace: str, crd: None
) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    schedules: list[Object] = []
    for manifest in sorted(examples.glob("*.yaml")):
        for loaded in yaml.safe_load_all(manifest.read_text()):
            # As kubectl sends it: YAML 1.1's boolean keys (an unquoted `on:`) as strings.
            document = json.loads(json.dumps(loaded))
            if document and document["kind"] == "Schedule":
                spec, problems = validate_spec(document["spec"], None)
                assert spec is not None and not problems, (manifest.name, problems)
                document["metadata"]["namespace"] = namespace
                schedules.append(document)
    assert len(schedules) >= 12
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(schedules), check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_readme_client_snippet_creates_a_one_time_schedule(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    script = Path(__file__).resolve().parents[2] / "examples" / "clients" / "escalate_ticket.py"
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    subprocess.run([sys.executable, str(script), namespace, "4711"], env=env, check=True)
    status = wait_phase(cluster, namespace, "escalate-ticket-4711", "Active")
    due = from_rfc3339(status["nextRunTime"]) - datetime.now(UTC)
    assert timedelta(hours=47, minutes=59) < due <= timedelta(hours=48)
    assert status["scheduleDescription"].startswith("Once at ")
