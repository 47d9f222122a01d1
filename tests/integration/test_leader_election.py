"""Two operator replicas: one leads through a Lease, the other stands by warm.

Both are the real ``cronfleet-operator`` program, each with its own identity
and a short lease (6 s, renew deadline 4 s, retry period 1 s), watching the
test's namespace, against the real control plane.
"""

from __future__ import annotations

import contextlib
import signal
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cronfleet_devcluster.controlplane import free_port
from cronfleet_devcluster.kube import EVENTS, JOBS, LEASES, SCHEDULES, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_runs import NEVER, attempt_script, history, run_now
from tests.integration.test_schedules import schedule, status_of, wait_phase

LEASE = "cronfleet-operator"
LEASE_DURATION = 6
# What the issue allows for a takeover after the leader dies.
TAKEOVER_BOUND = LEASE_DURATION + 5
# Long enough that the retry comes due after the failover has settled.
RETRY_DELAY = 40


@dataclass
class Replica:
    name: str
    process: OperatorProcess
    metrics_url: str

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text: str = response.read().decode()
        return text

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


@pytest.fixture
def replicas(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    tmp_path: Path,
) -> Iterator[dict[str, Replica]]:
    """Two replicas, "replica-a" started first; the session's operator paused meanwhile."""
    operator.require_local()
    operator.stop()  # a third, unelected operator would act beside them
    started: dict[str, Replica] = {}
    try:
        for name in ("replica-a", "replica-b"):
            port = free_port()
            env = {
                "POD_NAME": name,
                "CRONFLEET_NAMESPACES": namespace,
                "CRONFLEET_WORKERS": "4",
                "CRONFLEET_METRICS_PORT": str(port),
                "CRONFLEET_LEADER_ELECTION": "true",
                "CRONFLEET_LEADER_ELECTION_NAMESPACE": namespace,
                "CRONFLEET_LEADER_ELECTION_LEASE_DURATION": str(LEASE_DURATION),
                "CRONFLEET_LEADER_ELECTION_RENEW_DEADLINE": "4",
                "CRONFLEET_LEADER_ELECTION_RETRY_PERIOD": "1",
            }
            process = OperatorProcess(cluster.kubeconfig, tmp_path / f"{name}.log", env)
            replica = Replica(name, process, f"http://127.0.0.1:{port}/metrics")
            started[name] = replica
            process.start()
            if name == "replica-a":
                eventually(
                    lambda: holder(cluster, namespace).startswith("replica-a_"),
                    timeout=60,
                    what="replica-a holding the Lease",
                )
            eventually(
                lambda r=replica: "cronfleet_operator_leader" in r.metrics(),  # type: ignore[misc]
                timeout=60,
                what=f"{name} serving /metrics",
            )
        yield started
    finally:
        for replica in started.values():
            replica.process.stop()
            print(f"{replica.name} log: {replica.process.log_path}")
        operator.start()


def lease(cluster: Cluster, namespace: str) -> Object | None:
    return cluster.kube.get_or_none(LEASES, LEASE, namespace)


def holder(cluster: Cluster, namespace: str) -> str:
    found = lease(cluster, namespace)
    return str(((found or {}).get("spec") or {}).get("holderIdentity") or "")


def leader_gauge(replica: Replica) -> float:
    for line in replica.metrics().splitlines():
        if line.startswith("cronfleet_operator_leader "):
            return float(line.split()[1])
    raise AssertionError(f"no cronfleet_operator_leader on {replica.name}")


def jobs_of(cluster: Cluster, namespace: str, name: str, trigger: str) -> list[Object]:
    return [
        job
        for job in cluster.kube.items(
            JOBS, namespace, label_selector=f"cronfleet.io/schedule={name}"
        )
        if (job["metadata"].get("annotations") or {}).get("cronfleet.io/trigger") == trigger
    ]


def judged(cluster: Cluster, namespace: str, name: str) -> tuple[Any, ...]:
    """What a failover must not touch: the phase and every condition, with its transition time."""
    status = status_of(cluster, namespace, name)
    conditions = sorted(
        (c["type"], c["status"], c.get("reason"), c.get("lastTransitionTime"))
        for c in status.get("conditions") or []
    )
    return status.get("phase"), tuple(conditions)


def events(cluster: Cluster, namespace: str) -> dict[str, Object]:
    return {
        event["metadata"]["name"]: event
        for event in cluster.kube.items(EVENTS, namespace)
        if (event.get("involvedObject") or {}).get("kind") == "Schedule"
    }


def test_the_standby_takes_over_a_pending_retry_and_a_run_now_exactly_once(
    cluster: Cluster, namespace: str, replicas: dict[str, Replica]
) -> None:
    a, b = replicas["replica-a"], replicas["replica-b"]
    crashy: dict[str, Any] = {
        "cron": NEVER,
        "task": "command",
        "params": {"argv": attempt_script(succeed_on=2)},
        "retry": {
            "maxRetries": 3,
            "backoff": {
                "initialDelaySeconds": RETRY_DELAY,
                "factor": 1,
                "maxDelaySeconds": RETRY_DELAY,
            },
        },
    }
    ok: dict[str, Any] = {"cron": NEVER, "task": "command", "params": {"argv": ["true"]}}
    cluster.kube.create(SCHEDULES, schedule("crashy", **crashy), namespace)
    cluster.kube.create(SCHEDULES, schedule("manual", **ok), namespace)
    cluster.kube.create(SCHEDULES, schedule("quiet", **ok), namespace)
    for name in ("crashy", "manual", "quiet"):
        wait_phase(cluster, namespace, name, "Active", generation=1)
    run_now(cluster, namespace, "crashy", "go")
    eventually(
        lambda: status_of(cluster, namespace, "crashy").get("nextRetryTime"),
        timeout=90,
        interval=0.2,
        what="a retry scheduled",
    )
    assert leader_gauge(a) == 1 and leader_gauge(b) == 0
    before = {name: judged(cluster, namespace, name) for name in ("crashy", "quiet")}
    events_before = events(cluster, namespace)
    # Everything so far was written by the leader alone.
    assert {e.get("reportingInstance") for e in events_before.values()} == {"replica-a"}
    first_holder = holder(cluster, namespace)

    run_now(cluster, namespace, "manual", "just-before-the-kill")
    killed = time.monotonic()
    a.process.kill()
    new_holder = eventually(
        lambda: holder(cluster, namespace) if holder(cluster, namespace) != first_holder else None,
        timeout=TAKEOVER_BOUND + 30,
        interval=0.1,
        what="a new holder of the Lease",
    )
    takeover = time.monotonic() - killed
    print(f"takeover after SIGKILL of the leader: {takeover:.1f} s")
    assert new_holder.startswith("replica-b_")
    assert takeover <= TAKEOVER_BOUND, f"took {takeover:.1f} s, more than {TAKEOVER_BOUND} s"
    eventually(lambda: leader_gauge(b) == 1, timeout=10, what="replica-b's leader gauge at 1")
    assert f"{new_holder} became the leader" in b.log()
    # Its caches were warm: every Schedule was known at the takeover, before any new event.
    assert "leading: reconciling all 3 known Schedules" in b.log()

    # The run-now annotated just before the kill runs once.
    eventually(
        lambda: [run for run in history(cluster, namespace, "manual") if run.get("result")],
        timeout=90,
        interval=0.5,
        what="the manual run finished",
    )
    # The failover changed nothing on the Schedules it did not run.
    time.sleep(2)  # replica-b's first pass over every Schedule is done
    retry_due = status_of(cluster, namespace, "crashy")["nextRetryTime"]
    assert {name: judged(cluster, namespace, name) for name in ("crashy", "quiet")} == before
    after = events(cluster, namespace)
    assert set(events_before) <= set(after)
    new = [after[name] for name in set(after) - set(events_before)]
    assert {e["involvedObject"]["name"] for e in new} <= {"manual"}, [
        (e["involvedObject"]["name"], e["reason"]) for e in new
    ]
    reasons = [e["reason"] for e in new]
    assert len(reasons) == len(set(reasons)), f"an event posted twice: {reasons}"

    # The retry, pending at the kill, runs once on the new leader.
    def retried() -> list[Object] | None:
        runs = [run for run in history(cluster, namespace, "crashy") if run.get("result")]
        return runs if len(runs) >= 2 else None

    eventually(retried, timeout=RETRY_DELAY + 90, interval=0.5, what="the retry finished")
    time.sleep(3)  # a duplicate would have been created by now
    assert len(jobs_of(cluster, namespace, "crashy", "Retry")) == 1
    assert len(jobs_of(cluster, namespace, "manual", "Manual")) == 1
    runs = history(cluster, namespace, "crashy")
    assert [(r["trigger"], r["result"]) for r in reversed(runs)] == [
        ("Manual", "Failed"),
        ("Retry", "Succeeded"),
    ]
    assert [(r["trigger"], r["result"]) for r in history(cluster, namespace, "manual")] == [
        ("Manual", "Succeeded")
    ]
    print(f"retry was due at {retry_due}")


def test_only_the_leader_writes_and_a_graceful_leader_hands_over_at_once(
    cluster: Cluster, namespace: str, replicas: dict[str, Replica]
) -> None:
    a, b = replicas["replica-a"], replicas["replica-b"]
    ok: dict[str, Any] = {"cron": NEVER, "task": "command", "params": {"argv": ["true"]}}
    cluster.kube.create(SCHEDULES, schedule("solo", **ok), namespace)
    wait_phase(cluster, namespace, "solo", "Active", generation=1)
    run_now(cluster, namespace, "solo", "once")
    eventually(
        lambda: [run for run in history(cluster, namespace, "solo") if run.get("result")],
        timeout=90,
        interval=0.5,
        what="the manual run finished",
    )
    time.sleep(3)
    # Every event comes from the leader; the standby sent no write, nor tried to.
    reporters = {e.get("reportingInstance") for e in events(cluster, namespace).values()}
    assert reporters == {"replica-a"}
    standby_log = b.log()
    assert "not the leader" not in standby_log
    assert "became the leader" not in standby_log
    # The log line of each action: the leader's, never the standby's.
    assert "applied CronJob" in a.log() and "created Manual Job" in a.log()
    for action in ("applied ", "created ", "deleted "):
        assert action not in standby_log
    # kopf keeps no bookkeeping of its own on the Schedule: its handlers only watch.
    annotations = cluster.kube.get(SCHEDULES, "solo", namespace)["metadata"].get("annotations")
    assert set(annotations or {}) <= {"cronfleet.io/run-now"}
    # Only the leader exports the per-Schedule series.
    assert "cronfleet_schedule_info{" in a.metrics()
    standby = b.metrics()
    assert leader_gauge(b) == 0
    assert "cronfleet_schedule_info{" not in standby
    assert "cronfleet_schedules{" not in standby
    assert "cronfleet_operator_runs_started_total{" not in standby

    # A graceful stop releases the Lease: the standby needs not wait for it to expire.
    stopping = time.monotonic()
    assert a.process.process is not None
    a.process.process.send_signal(signal.SIGTERM)
    eventually(
        lambda: holder(cluster, namespace).startswith("replica-b_"),
        timeout=TAKEOVER_BOUND + 30,
        interval=0.1,
        what="replica-b holding the Lease",
    )
    handover = time.monotonic() - stopping
    print(f"takeover after SIGTERM of the leader: {handover:.1f} s")
    with contextlib.suppress(Exception):
        a.process.process.wait(30)
    assert "released the Lease" in a.log()
    eventually(lambda: leader_gauge(b) == 1, timeout=10, what="replica-b's leader gauge at 1")
    assert "cronfleet_schedule_info{" in b.metrics()
