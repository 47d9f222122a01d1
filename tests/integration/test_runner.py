"""The shared runner image on the real control plane: a CronJob's pod runs ``cronfleet-runner``
and Kubernetes reports the runner's JSON summary as the container's termination message."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from cronfleet_devcluster.kube import CRONJOBS, JOBS, NAMESPACES, PODS, SECRETS, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster
from tests.integration.jobs import completed_job, job_condition
from tests.unit.runner.loopback import LoopbackServer

RUNNER_IMAGE = "ghcr.io/cronfleet/cronfleet-runner:0.1.0"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    # Pods of the local node agent are local processes, so they reach loopback.
    running = LoopbackServer()
    yield running
    running.close()


def restricted(namespace: str, cluster: Cluster) -> None:
    cluster.kube.patch(
        NAMESPACES,
        namespace,
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
    )


def runner_pod_spec(task: str, params: object, schedule: str, **extra: Any) -> Object:
    """A pod as the operator will make it: the runner image, the contract's env, restricted."""
    env: list[Object] = [
        {"name": "CRONFLEET_TASK", "value": task},
        {"name": "CRONFLEET_PARAMS", "value": json.dumps(params)},
        {"name": "CRONFLEET_SCHEDULE", "value": schedule},
        {
            "name": "CRONFLEET_RUN",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
        },
        {"name": "CRONFLEET_TRIGGER", "value": "Scheduled"},
        {"name": "CRONFLEET_ATTEMPT", "value": "0"},
        *extra.pop("env", []),
    ]
    return {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 10,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "runner",
                "image": RUNNER_IMAGE,
                "env": env,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
        **extra,
    }


def terminated_state(cluster: Cluster, namespace: str, selector: str) -> Object:
    def probe() -> Object | None:
        for pod in cluster.kube.items(PODS, namespace, label_selector=selector):
            if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                continue
            for status in pod["status"].get("containerStatuses") or []:
                state: Object | None = status["state"].get("terminated")
                if state:
                    return state
        return None

    return eventually(probe, timeout=60, what=f"a terminated runner container ({selector})")


def test_a_cronjob_runs_the_http_task_and_reports_its_summary(
    cluster: Cluster, namespace: str, server: LoopbackServer
) -> None:
    restricted(namespace, cluster)
    token = base64.b64encode(b"Bearer sync-s3cret").decode()
    cluster.kube.create(
        SECRETS,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sync"}, "data": {"t": token}},
        namespace,
    )
    params = {
        "url": server.url("/json"),
        "method": "POST",
        "json": {"source": "shopify"},
        "headersFromEnv": {"Authorization": "SYNC_TOKEN"},
    }
    token_env = {"name": "SYNC_TOKEN", "valueFrom": {"secretKeyRef": {"name": "sync", "key": "t"}}}
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "shopify-sync"},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": runner_pod_spec(
                            "http", params, f"{namespace}/shopify-sync", env=[token_env]
                        )
                    },
                }
            },
        },
    }
    cluster.kube.create(CRONJOBS, cronjob, namespace)

    job = completed_job(cluster, namespace)
    job_name = job["metadata"]["name"]
    state = terminated_state(cluster, namespace, f"job-name={job_name}")
    assert state["exitCode"] == 0
    summary = json.loads(state["message"])
    assert summary["result"] == "Succeeded"
    assert summary["message"].startswith(f"POST {server.url('/json')} returned 200 OK after ")
    assert summary["data"] == {"status": 200, "bytes": 24, "json": {"ok": True, "count": 3}}

    request = next(seen for seen in server.requests if seen.path == "/json")
    assert request.method == "POST"
    assert json.loads(request.body) == {"source": "shopify"}
    # The Secret's value went to the endpoint, and nowhere into what Kubernetes shows.
    assert request.headers["authorization"] == "Bearer sync-s3cret"
    assert "s3cret" not in state["message"]
    cluster.kubectl("delete", "cronjob", "shopify-sync", "-n", namespace, "--wait=false")


def test_invalid_params_fail_the_job_at_once_with_the_params_named(
    cluster: Cluster, namespace: str
) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "bad-params"},
        "spec": {
            "backoffLimit": 3,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "runner", "operator": "In", "values": [2]},
                    }
                ]
            },
            "template": {
                "spec": runner_pod_spec(
                    "http", {"url": "sync.tenant-acme.svc/run"}, f"{namespace}/bad-params"
                )
            },
        },
    }
    cluster.kube.create(JOBS, job, namespace)
    failed = eventually(
        lambda: job_condition(cluster.kube.get(JOBS, "bad-params", namespace), "Failed"),
        timeout=60,
        what="Job Failed condition",
    )
    assert failed["reason"] == "PodFailurePolicy"
    state = terminated_state(cluster, namespace, "job-name=bad-params")
    assert state["exitCode"] == 2
    summary = json.loads(state["message"])
    assert summary["result"] == "Failed"
    assert summary["message"].startswith(
        "Invalid params for task 'http': params.url: Input should be a valid URL"
    )
    assert len(cluster.kube.items(PODS, namespace, label_selector="job-name=bad-params")) == 1


def test_a_deadline_stops_the_runner_with_sigterm_and_it_says_so(
    cluster: Cluster, namespace: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "slow", "labels": {"run": "slow"}},
        "spec": runner_pod_spec(
            # 5 s, not less: a container's PID 1 ignores SIGTERM until the runner has
            # installed its handler, and on a busy node Python takes seconds to get there.
            "sleep",
            {"seconds": 120},
            f"{namespace}/slow",
            activeDeadlineSeconds=5,
        ),
    }
    cluster.kube.create(PODS, pod, namespace)
    state = terminated_state(cluster, namespace, "run=slow")
    # 143, not 137: the runner stopped on SIGTERM within the grace, no SIGKILL needed.
    assert state["exitCode"] == 143
    summary = json.loads(state["message"])
    assert summary["result"] == "Failed"
    assert summary["message"].startswith("Terminated by SIGTERM after ")
    assert "while running task 'sleep'; the task was stopped" in summary["message"]
    assert summary["data"] == {"signal": "SIGTERM"}
