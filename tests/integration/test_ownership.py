"""A Schedule's runs are the Jobs it controls, not every Job with its label; two
Schedules whose names share a CronJob name do not fight over it."""

from __future__ import annotations

import time

from cronfleet.naming import cronjob_name
from cronfleet_devcluster.kube import CRONJOBS, JOBS, SCHEDULES, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.jobs import job_condition
from tests.integration.test_schedules import events_for, schedule, status_of, wait_phase


def test_a_job_that_only_carries_the_label_is_not_a_run(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kube.create(SCHEDULES, schedule("sync"), namespace)
    wait_phase(cluster, namespace, "sync", "Active")
    cronjob = cluster.kube.get(CRONJOBS, "sync", namespace)
    template = cronjob["spec"]["jobTemplate"]
    # Anyone who may create Jobs can copy the labels and annotations: a failing
    # "run" like this one used to be counted, and could hide or forge results.
    forged: Object = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "sync-29000000",
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
        },
        "spec": {
            **template["spec"],
            "template": {
                **template["spec"]["template"],
                "spec": {
                    **template["spec"]["template"]["spec"],
                    "containers": [
                        {
                            **template["spec"]["template"]["spec"]["containers"][0],
                            "env": [{"name": "CRONFLEET_TASK", "value": "no-such-task"}],
                        }
                    ],
                },
            },
        },
    }
    cluster.kube.create(JOBS, forged, namespace)
    eventually(
        lambda: job_condition(cluster.kube.get(JOBS, "sync-29000000", namespace), "Failed"),
        timeout=60,
        interval=0.5,
        what="the forged Job failed",
    )
    time.sleep(3)
    status = status_of(cluster, namespace, "sync")
    assert status.get("history") == []
    assert status["counts"]["failed"] == 0 and status["phase"] == "Active"
    assert not [e for e in events_for(cluster, namespace, "sync") if e["reason"] == "RunFailed"]


def test_the_schedule_created_first_keeps_a_shared_cronjob_name(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    long_name = "nightly-" + "x" * 52  # 60 characters: its CronJob name is shortened
    short = cronjob_name(long_name)
    cluster.kube.create(SCHEDULES, schedule(long_name), namespace)
    wait_phase(cluster, namespace, long_name, "Active")
    elder = cluster.kube.get(SCHEDULES, long_name, namespace)
    cluster.kube.create(SCHEDULES, schedule(short, cron="* * * * *"), namespace)
    status = wait_phase(cluster, namespace, short, "Invalid")
    assert (
        f"Schedule {long_name} already owns the CronJob and run names {short!r}"
        in (status["message"])
    )
    assert any(
        e["reason"] == "InvalidSpec" and long_name in e["message"]
        for e in events_for(cluster, namespace, short)
    )
    time.sleep(2)
    cronjob = cluster.kube.get(CRONJOBS, short, namespace)
    assert cronjob["metadata"]["ownerReferences"][0]["uid"] == elder["metadata"]["uid"]
    assert cronjob["spec"]["schedule"] == "0 2 * * *"  # the elder's, not overwritten

    # Once the elder is gone (and its CronJob with it), the name is free.
    cluster.kube.delete(SCHEDULES, long_name, namespace)
    # The garbage collector removes the elder's CronJob (up to a minute: it
    # learns of new custom resources on its own resync), then the name is free.
    status = eventually(
        lambda: (
            found
            if (found := status_of(cluster, namespace, short)).get("phase") == "Active"
            else None
        ),
        timeout=120,
        interval=1,
        what=f"{short} Active once the name is free",
    )
    assert status["message"] == ""
    younger = cluster.kube.get(SCHEDULES, short, namespace)
    cronjob = eventually(
        lambda: (
            found
            if (found := cluster.kube.get_or_none(CRONJOBS, short, namespace))
            and found["metadata"]["ownerReferences"][0]["uid"] == younger["metadata"]["uid"]
            else None
        ),
        timeout=60,
        interval=0.5,
        what="the CronJob of the younger Schedule",
    )
    assert cronjob["spec"]["schedule"] == "* * * * *"
