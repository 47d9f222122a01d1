"""A Schedule becomes a native CronJob and stays one: create, update, suspend,
repair, delete, restart, and what users see in `kubectl get schedules`."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from cronfleet_devcluster.kube import CRONJOBS, EVENTS, SCHEDULES, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess


def schedule(name: str, **spec: Any) -> Object:
    # A loopback URL: a run the clock happens to start looks up no name.
    body: Object = {"cron": "0 2 * * *", "task": "http", "params": {"url": "http://127.0.0.1:9/"}}
    body.update(spec)
    return {
        "apiVersion": "cronfleet.io/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name},
        "spec": body,
    }


def status_of(cluster: Cluster, namespace: str, name: str) -> Object:
    status: Object = cluster.kube.get(SCHEDULES, name, namespace).get("status") or {}
    return status


def wait_phase(
    cluster: Cluster, namespace: str, name: str, phase: str, generation: int = 1
) -> Object:
    def probe() -> Object | None:
        status = status_of(cluster, namespace, name)
        if status.get("phase") == phase and status.get("observedGeneration") == generation:
            return status
        return None

    return eventually(probe, timeout=30, what=f"{name} phase {phase} at generation {generation}")


def events_for(cluster: Cluster, namespace: str, name: str) -> list[Object]:
    return cluster.kube.items(
        EVENTS, namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=Schedule"
    )


def test_schedule_becomes_an_owned_cronjob(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    env = [{"name": "REGION", "value": "eu"}]
    created = cluster.kube.create(
        SCHEDULES,
        schedule("shopify-sync", cron="0 2 * * *", timeZone="Asia/Kolkata", env=env),
        namespace,
    )
    status = wait_phase(cluster, namespace, "shopify-sync", "Active")
    assert status["cronJob"] == "shopify-sync"
    assert status["scheduleDescription"] == "At 02:00 (Asia/Kolkata)"
    # 02:00 in Kolkata is 20:30 UTC the day before.
    next_run = datetime.fromisoformat(status["nextRunTime"].replace("Z", "+00:00"))
    assert (next_run.hour, next_run.minute) == (20, 30)
    assert next_run > datetime.now(UTC)
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Scheduled")

    cronjob = cluster.kube.get(CRONJOBS, "shopify-sync", namespace)
    spec = cronjob["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["suspend"]) == (
        "0 2 * * *",
        "Asia/Kolkata",
        False,
    )
    assert spec["concurrencyPolicy"] == "Forbid"
    owner = cronjob["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Schedule",
        "shopify-sync",
        created["metadata"]["uid"],
        True,
    )
    assert cronjob["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "cronfleet",
        "cronfleet.io/schedule": "shopify-sync",
    }
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] == 3600
    assert job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2]
    pod = job["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"].split("/")[-1].startswith("cronfleet-runner:")
    env_by_name = {item["name"]: item for item in container["env"]}
    assert env_by_name["CRONFLEET_TASK"]["value"] == "http"
    assert json.loads(env_by_name["CRONFLEET_PARAMS"]["value"]) == {"url": "http://127.0.0.1:9/"}
    assert env_by_name["CRONFLEET_SCHEDULE"]["value"] == f"{namespace}/shopify-sync"
    assert env_by_name["CRONFLEET_TRIGGER"]["value"] == "Scheduled"
    assert env_by_name["REGION"]["value"] == "eu"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }

    # kopf's bookkeeping neither lands in the pruned status nor in its default annotations.
    stored = cluster.kube.get(SCHEDULES, "shopify-sync", namespace)
    assert "kopf" not in stored["status"]
    assert not [a for a in stored["metadata"].get("annotations") or {} if "kopf" in a]

    # The operator never writes spec: only its status manager touches the object.
    managers = {
        (m["manager"], m.get("subresource", ""))
        for m in cluster.kube.get(SCHEDULES, "shopify-sync", namespace)["metadata"]["managedFields"]
    }
    assert ("cronfleet", "status") in managers
    assert not any(m == "cronfleet" and sub != "status" for m, sub in managers)


def test_restricted_namespace_admits_the_runs(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    strict = schedule("strict", task="sleep", params={"seconds": 0})
    cluster.kube.create(SCHEDULES, strict, namespace)
    wait_phase(cluster, namespace, "strict", "Active")
    result = cluster.kubectl(
        "create",
        "job",
        "probe",
        "--from=cronjob/strict",
        "-n",
        namespace,
        "--dry-run=server",
        "-o",
        "name",
    )
    assert result.stdout.strip() == "job.batch/probe"

    # Admitted is not yet run: on a real node the kernel enforces the pod's
    # security context, and the runner must still work as UID 65532 on a
    # read-only root filesystem with no capabilities.
    cluster.kubectl(
        "annotate", "schedule", "strict", "-n", namespace, "cronfleet.io/run-now=restricted"
    )

    def finished_run() -> Object | None:
        runs: list[Object] = status_of(cluster, namespace, "strict").get("history") or []
        return next((run for run in runs if run.get("result")), None)

    run = eventually(finished_run, timeout=90, interval=0.5, what="the restricted run finished")
    assert (run["result"], run["exitCode"]) == ("Succeeded", 0), run


def test_spec_edit_updates_the_cronjob_and_next_run(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kube.create(SCHEDULES, schedule("feed", cron="0 * * * *"), namespace)
    before = wait_phase(cluster, namespace, "feed", "Active")
    cluster.kube.patch(
        SCHEDULES,
        "feed",
        {"spec": {"cron": "*/10 * * * *", "timeZone": "Europe/Berlin"}},
        namespace,
    )
    after = wait_phase(cluster, namespace, "feed", "Active", generation=2)
    cronjob = cluster.kube.get(CRONJOBS, "feed", namespace)
    assert (cronjob["spec"]["schedule"], cronjob["spec"]["timeZone"]) == (
        "*/10 * * * *",
        "Europe/Berlin",
    )
    assert after["scheduleDescription"] == "Every 10 minutes (Europe/Berlin)"
    next_run = datetime.fromisoformat(after["nextRunTime"].replace("Z", "+00:00"))
    assert next_run.minute % 10 == 0
    assert after["nextRunTime"] <= before["nextRunTime"]


def test_suspend_and_resume(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster.kube.create(SCHEDULES, schedule("drain", cron="*/10 * * * *"), namespace)
    wait_phase(cluster, namespace, "drain", "Active")
    cluster.kubectl(
        "patch",
        "schedule",
        "drain",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"suspend":true}}',
    )
    paused = wait_phase(cluster, namespace, "drain", "Paused", generation=2)
    assert cluster.kube.get(CRONJOBS, "drain", namespace)["spec"]["suspend"] is True
    assert paused.get("nextRunTime") is None
    cluster.kubectl(
        "patch",
        "schedule",
        "drain",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"suspend":false}}',
    )
    active = wait_phase(cluster, namespace, "drain", "Active", generation=3)
    assert cluster.kube.get(CRONJOBS, "drain", namespace)["spec"]["suspend"] is False
    assert active["nextRunTime"]
    reasons = [e["reason"] for e in events_for(cluster, namespace, "drain")]
    assert "Suspended" in reasons and "Resumed" in reasons


def test_cronjob_deleted_or_edited_by_hand_is_restored(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kube.create(SCHEDULES, schedule("cleanup", cron="0 0 * * *"), namespace)
    wait_phase(cluster, namespace, "cleanup", "Active")
    original_uid = cluster.kube.get(CRONJOBS, "cleanup", namespace)["metadata"]["uid"]

    cluster.kubectl(
        "patch",
        "cronjob",
        "cleanup",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"schedule":"5 5 * * *","suspend":true}}',
    )
    eventually(
        lambda: cluster.kube.get(CRONJOBS, "cleanup", namespace)["spec"]["schedule"] == "0 0 * * *",
        timeout=30,
        what="hand edit reverted",
    )
    assert cluster.kube.get(CRONJOBS, "cleanup", namespace)["spec"]["suspend"] is False

    cluster.kubectl("delete", "cronjob", "cleanup", "-n", namespace)
    restored = eventually(
        lambda: (
            (c := cluster.kube.get_or_none(CRONJOBS, "cleanup", namespace))
            and c["metadata"]["uid"] != original_uid
            and c
        ),
        timeout=30,
        what="deleted CronJob recreated",
    )
    assert restored["spec"]["schedule"] == "0 0 * * *"


def test_deleting_the_schedule_garbage_collects_the_cronjob(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kube.create(SCHEDULES, schedule("gone"), namespace)
    wait_phase(cluster, namespace, "gone", "Active")
    cluster.kubectl("delete", "schedule", "gone", "-n", namespace)
    eventually(
        lambda: cluster.kube.get_or_none(CRONJOBS, "gone", namespace) is None,
        timeout=60,
        what="CronJob garbage-collected",
    )


def test_long_name_gets_a_stable_truncated_cronjob_name(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    name = "tenant-acme-" + "very-long-" * 6 + "shopify-sync"
    cluster.kube.create(SCHEDULES, schedule(name), namespace)
    status = wait_phase(cluster, namespace, name, "Active")
    cronjob_name = status["cronJob"]
    assert len(cronjob_name) <= 52 and cronjob_name.startswith("tenant-acme-very-long")
    cronjob = cluster.kube.get(CRONJOBS, cronjob_name, namespace)
    assert cronjob["metadata"]["ownerReferences"][0]["name"] == name


def test_kubectl_get_schedules_shows_the_columns(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kube.create(SCHEDULES, schedule("reindex", cron="0 */6 * * *"), namespace)
    wait_phase(cluster, namespace, "reindex", "Active")
    table = cluster.kubectl("get", "schedules", "-n", namespace).stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "PHASE",
        "LAST",
        "RUN",
        "NEXT",
        "RUN",
        "RETRIES",
        "AGE",
    ]
    row = table[1].split()
    assert row[:3] == ["reindex", "0", "*/6"] and "Active" in row
    wide = cluster.kubectl("get", "sched", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-4:] == ["TASK", "AFTER", "LAST", "RESULT"]
    assert "http" in wide[1].split()
    by_category = cluster.kubectl("get", "cronfleet", "-n", namespace, "-o", "name").stdout
    assert "schedule.cronfleet.io/reindex" in by_category


def versions(cluster: Cluster, namespace: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The resourceVersions of each Schedule and its CronJob: any write changes them."""
    return {
        name: (
            cluster.kube.get(SCHEDULES, name, namespace)["metadata"]["resourceVersion"],
            cluster.kube.get(CRONJOBS, name, namespace)["metadata"]["resourceVersion"],
        )
        for name in names
    }


def test_operator_restart_creates_nothing_twice_and_writes_nothing(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    operator.require_local()
    for name in ("a", "b", "c"):
        cluster.kube.create(SCHEDULES, schedule(name, cron="0 3 * * *"), namespace)
    for name in ("a", "b", "c"):
        wait_phase(cluster, namespace, name, "Active")
    time.sleep(1)  # let the last status writes land before taking the baseline
    before = versions(cluster, namespace, ("a", "b", "c"))
    operator.restart()
    # A changed Schedule after the restart proves the operator is back and working.
    cluster.kube.create(SCHEDULES, schedule("after-restart"), namespace)
    wait_phase(cluster, namespace, "after-restart", "Active")
    after = versions(cluster, namespace, ("a", "b", "c"))
    assert after == before
    assert len(cluster.kube.items(CRONJOBS, namespace)) == 4
