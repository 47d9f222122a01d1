"""Missed fire times processed on recovery (catch-up) and past ranges run on
request (backfill), with tasks really run and no duplicate across a restart."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from cronfleet.clock import from_rfc3339, to_rfc3339
from cronfleet_devcluster.kube import SCHEDULES, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_cadences import cadence_schedule, scheduled_jobs, soon
from tests.integration.test_runs import history
from tests.integration.test_schedules import events_for, wait_phase


def runs_of(cluster: Cluster, namespace: str, name: str, trigger: str) -> list[Object]:
    return [r for r in history(cluster, namespace, name) if r["trigger"] == trigger]


def wait_until(moment: datetime) -> None:
    while datetime.now(UTC) < moment:
        time.sleep(0.2)


def outage_across_fire_times(
    cluster: Cluster, namespace: str, operator: OperatorProcess, policy: str, missed: int
) -> tuple[str, list[datetime]]:
    """An `every: 20s` Schedule whose operator is SIGKILLed across `missed` fire
    times, and restarted after their starting deadline (10 s) has passed."""
    operator.require_local()
    name = f"sync-{policy.lower()}"
    start = soon(4)
    spec: dict[str, Any] = {
        "every": "20s",
        "startTime": to_rfc3339(start),
        "startingDeadlineSeconds": 10,
        "catchUp": {"policy": policy, "windowSeconds": 600},
    }
    cluster.kube.create(SCHEDULES, cadence_schedule(name, **spec), namespace)
    wait_phase(cluster, namespace, name, "Active")
    eventually(
        lambda: runs_of(cluster, namespace, name, "Scheduled") or None,
        timeout=40,
        what="the first scheduled run",
    )
    operator.kill()
    lost = [start + timedelta(seconds=20 * k) for k in range(1, missed + 1)]
    wait_until(lost[-1] + timedelta(seconds=12))
    operator.start()
    return name, lost


def test_latest_catches_up_one_run_after_an_operator_outage(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    name, lost = outage_across_fire_times(cluster, namespace, operator, "Latest", missed=2)
    caught = eventually(
        lambda: (
            [r for r in runs_of(cluster, namespace, name, "CatchUp") if r.get("result")] or None
        ),
        timeout=60,
        what="the catch-up run",
    )
    time.sleep(5)
    caught = runs_of(cluster, namespace, name, "CatchUp")
    assert [from_rfc3339(r["scheduledTime"]) for r in caught] == [lost[-1]]
    assert caught[0]["result"] == "Succeeded"
    assert "CatchUpQueued" in [e["reason"] for e in events_for(cluster, namespace, name)]
    names = [j["metadata"]["name"] for j in scheduled_jobs(cluster, namespace)]
    assert len(names) == len(set(names))


def test_all_catches_up_every_missed_run(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    name, lost = outage_across_fire_times(cluster, namespace, operator, "All", missed=2)
    eventually(
        lambda: (
            len([r for r in runs_of(cluster, namespace, name, "CatchUp") if r.get("result")]) >= 2
        ),
        timeout=90,
        what="two catch-up runs",
    )
    caught = runs_of(cluster, namespace, name, "CatchUp")
    assert sorted(from_rfc3339(r["scheduledTime"]) for r in caught) == lost


def test_backfill_runs_each_fire_time_of_a_range_once(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    spec: dict[str, Any] = {"cron": "*/2 * * * *", "task": "sleep", "params": {"seconds": 0}}
    cluster.kube.create(SCHEDULES, cadence_schedule("resync", **spec), namespace)
    wait_phase(cluster, namespace, "resync", "Active")
    value = "2026-11-01T10:00:00Z/2026-11-01T10:07:00Z"
    cluster.kubectl(
        "annotate", "schedule", "resync", "-n", namespace, f"cronfleet.io/backfill={value}"
    )
    eventually(
        lambda: (
            len([r for r in runs_of(cluster, namespace, "resync", "Backfill") if r.get("result")])
            >= 4
        ),
        timeout=120,
        what="four backfill runs",
    )
    operator.restart()
    time.sleep(8)
    runs = runs_of(cluster, namespace, "resync", "Backfill")
    assert sorted(r["scheduledTime"][11:16] for r in runs) == ["10:00", "10:02", "10:04", "10:06"]
    assert all(r["result"] == "Succeeded" for r in runs)
    # Forbid: one after another, never two at once.
    spans = sorted((r["startTime"], r["completionTime"]) for r in runs)
    assert all(later[0] >= earlier[1] for earlier, later in pairwise(spans))
    assert "BackfillQueued" in [e["reason"] for e in events_for(cluster, namespace, "resync")]
