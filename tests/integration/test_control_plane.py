"""The local control plane behaves like a real cluster where cronfleet depends on it:
CronJobs fire, Jobs finish or fail from real pod exits, garbage collection follows
owner references, and Pod Security admission is enforced."""

from __future__ import annotations

import time

import pytest

from cronfleet_devcluster.kube import CRONJOBS, JOBS, NAMESPACES, PODS, ApiError, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, needs_agent_images
from tests.integration.jobs import completed_job, job_condition


def shell_pod_template(script: str) -> Object:
    return {
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}
            ],
        }
    }


@needs_agent_images
def test_cronjob_every_minute_runs_a_job_to_completion(cluster: Cluster, namespace: str) -> None:
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick"},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "spec": {"backoffLimit": 0, "template": shell_pod_template("echo tick; exit 0")}
            },
        },
    }
    cluster.kube.create(CRONJOBS, cronjob, namespace)
    started = time.monotonic()

    job = completed_job(cluster, namespace)
    assert time.monotonic() - started < 90
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("CronJob", "tick")
    pods = cluster.kube.items(PODS, namespace, label_selector=f"job-name={job['metadata']['name']}")
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]
    assert pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    last = eventually(
        lambda: cluster.kube.get(CRONJOBS, "tick", namespace)["status"].get("lastSuccessfulTime"),
        timeout=30,
        what="CronJob lastSuccessfulTime",
    )
    assert last

    # Deleting the CronJob garbage-collects its Jobs and their Pods.
    cluster.kubectl("delete", "cronjob", "tick", "-n", namespace, "--wait=false")
    eventually(
        lambda: not cluster.kube.items(JOBS, namespace), timeout=60, what="Jobs garbage-collected"
    )
    eventually(
        lambda: not cluster.kube.items(PODS, namespace), timeout=60, what="Pods garbage-collected"
    )


@needs_agent_images
def test_pod_exit_code_one_fails_the_job(cluster: Cluster, namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "fails"},
        "spec": {
            "backoffLimit": 0,
            "template": shell_pod_template("echo 'it broke' > /dev/termination-log; exit 1"),
        },
    }
    cluster.kube.create(JOBS, job, namespace)
    failed = eventually(
        lambda: job_condition(cluster.kube.get(JOBS, "fails", namespace), "Failed"),
        timeout=60,
        what="Job Failed condition",
    )
    assert failed["reason"] == "BackoffLimitExceeded"
    pod = cluster.kube.items(PODS, namespace, label_selector="job-name=fails")[0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 1
    assert terminated["reason"] == "Error"
    assert terminated["message"].strip() == "it broke"


@needs_agent_images
def test_pod_failure_policy_fails_job_at_once_on_exit_code_two(
    cluster: Cluster, namespace: str
) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "permanent"},
        "spec": {
            "backoffLimit": 5,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "main", "operator": "In", "values": [2]},
                    }
                ]
            },
            "template": shell_pod_template("exit 2"),
        },
    }
    cluster.kube.create(JOBS, job, namespace)
    failed = eventually(
        lambda: job_condition(cluster.kube.get(JOBS, "permanent", namespace), "Failed"),
        timeout=60,
        what="Job Failed condition",
    )
    assert failed["reason"] == "PodFailurePolicy"
    assert len(cluster.kube.items(PODS, namespace, label_selector="job-name=permanent")) == 1


def test_restricted_namespace_rejects_a_privileged_pod(cluster: Cluster, namespace: str) -> None:
    cluster.kube.patch(
        NAMESPACES,
        namespace,
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
    )
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root"},
        "spec": {
            "containers": [
                {"name": "main", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    with pytest.raises(ApiError) as rejected:
        cluster.kube.create(PODS, privileged, namespace)
    assert rejected.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in rejected.value.message
    assert "privileged" in rejected.value.message

    compliant = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "compliant"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["true"],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    cluster.kube.create(PODS, compliant, namespace)
