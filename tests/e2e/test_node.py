"""The real node runs pods as a cluster does: restricted, isolated, with real statuses.

What the node agent imitates is checked here against a real kubelet on
containerd and runc: the security context is enforced by the kernel, the exit
code and termination message come from the container, the pod's address from
the CNI bridge, and an image that was not imported fails without any network.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Any

import pytest

from cronfleet_devcluster.controlplane import NODE_NAME
from cronfleet_devcluster.kube import EVENTS, NODES, PODS
from cronfleet_devcluster.node import (
    API_SERVICE_ADDRESS,
    NODE_ADDRESS,
    POD_CIDR,
    PROBE_IMAGE,
    UNREACHABLE_REGISTRY,
    KubeletNode,
)
from cronfleet_devcluster.testing import eventually

from .conftest import RealNode

Object = dict[str, Any]

RESTRICTED_CONTAINER_CONTEXT: Object = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def restricted_pod(
    name: str,
    image: str,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
    pull_policy: str = "Never",
) -> Object:
    container: Object = {
        "name": "main",
        "image": image,
        "imagePullPolicy": pull_policy,
        "securityContext": RESTRICTED_CONTAINER_CONTEXT,
    }
    if command:
        container["command"] = command
    if env:
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
        },
    }


def finished(real_node: RealNode, namespace: str, name: str) -> Object:
    """The pod once it has Succeeded or Failed, with its container's terminated state."""

    def probe() -> Object | None:
        pod = real_node.kube.get(PODS, name, namespace)
        if pod["status"].get("phase") not in ("Succeeded", "Failed"):
            return None
        return pod

    pod: Object = eventually(probe, timeout=60, what=f"pod {name} finished")
    return pod


def terminated(pod: Object) -> Object:
    state: Object = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return state


def test_node_registers_ready_with_its_address(real_node: RealNode) -> None:
    node = real_node.kube.get(NODES, NODE_NAME)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == NODE_ADDRESS
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


@pytest.mark.parametrize("exit_code", [0, 3])
def test_restricted_pod_runs_confined_and_reports_exit_code_and_message(
    real_node: RealNode, restricted_namespace: str, exit_code: int
) -> None:
    name = f"probe-{exit_code}"
    real_node.kube.create(
        PODS,
        restricted_pod(name, PROBE_IMAGE, ["/nodeprobe", "report", str(exit_code)]),
        restricted_namespace,
    )
    pod = finished(real_node, restricted_namespace, name)
    assert pod["status"]["phase"] == ("Succeeded" if exit_code == 0 else "Failed")
    state = terminated(pod)
    assert state["exitCode"] == exit_code
    assert state["reason"] == ("Completed" if exit_code == 0 else "Error")
    # What the kernel enforced, as the container itself saw it.
    seen = json.loads(state["message"])
    assert seen == {
        "uid": 65532,
        "gid": 65532,
        "rootWritable": False,
        "capEff": "0000000000000000",
        "seccomp": "2",  # filter mode: the runtime's default profile
        "noNewPrivs": "1",
    }
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(POD_CIDR)
    assert pod["status"]["hostIP"] == NODE_ADDRESS


def test_pod_reaches_the_api_server_as_an_in_cluster_client(
    real_node: RealNode, restricted_namespace: str
) -> None:
    real_node.kube.create(
        PODS,
        restricted_pod("in-cluster", PROBE_IMAGE, ["/nodeprobe", "apiserver"]),
        restricted_namespace,
    )
    pod = finished(real_node, restricted_namespace, "in-cluster")
    state = terminated(pod)
    call = json.loads(state["message"])
    assert call["url"] == f"https://{API_SERVICE_ADDRESS}:443/version", call
    assert call["statusCode"] == 200, call
    assert call["gitVersion"].startswith("v1."), call
    assert state["exitCode"] == 0


def test_image_that_was_not_imported_fails_to_pull_without_network(
    real_node: RealNode, restricted_namespace: str
) -> None:
    image = "docker.io/library/cronfleet-never-imported:1"
    real_node.kube.create(
        PODS, restricted_pod("unknown", image, pull_policy="IfNotPresent"), restricted_namespace
    )

    def waiting() -> Object | None:
        pod = real_node.kube.get(PODS, "unknown", restricted_namespace)
        statuses = pod["status"].get("containerStatuses") or []
        state: Object | None = statuses[0]["state"].get("waiting") if statuses else None
        if state and state.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
            return state
        return None

    eventually(waiting, timeout=30, what="image pull failure")
    events = real_node.kube.items(
        EVENTS, restricted_namespace, field_selector="involvedObject.name=unknown"
    )
    failures = [e["message"] for e in events if e["reason"] == "Failed"]
    assert failures, events
    # The pull went to the unused loopback port containerd is pointed at, nowhere else.
    port = UNREACHABLE_REGISTRY.rsplit(":", 1)[1]
    assert any(f"127.0.0.1:{port}" in message for message in failures), failures


def runner_image(real_node: RealNode) -> str:
    """The imported runner image, or a skip saying how to build it."""
    node = KubeletNode(real_node.plane, NODE_NAME)
    names = [name for name in node.images() if "cronfleet-runner:" in name]
    if not names:
        pytest.skip(
            "no cronfleet-runner image archive under ~/.cache/cronfleet/images (`make images`)"
        )
    return names[0]


def pod_log(real_node: RealNode, namespace: str, name: str) -> str:
    binaries = real_node.plane.binaries
    assert binaries is not None
    result = subprocess.run(
        [
            str(binaries.kubectl),
            "--kubeconfig",
            str(real_node.plane.kubeconfig),
            "logs",
            "--namespace",
            namespace,
            name,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def test_runner_image_runs_a_task_and_writes_its_summary(
    real_node: RealNode, restricted_namespace: str
) -> None:
    image = runner_image(real_node)
    real_node.kube.create(
        PODS,
        restricted_pod(
            "runner",
            image,
            env={"CRONFLEET_TASK": "sleep", "CRONFLEET_PARAMS": '{"seconds": 0}'},
        ),
        restricted_namespace,
    )
    pod = finished(real_node, restricted_namespace, "runner")
    state = terminated(pod)
    assert state["exitCode"] == 0, state
    summary = json.loads(state["message"])
    assert summary["result"] == "Succeeded", summary


def test_deleted_runner_pod_stops_on_sigterm_with_143_and_a_summary(
    real_node: RealNode, restricted_namespace: str
) -> None:
    image = runner_image(real_node)
    real_node.kube.create(
        PODS,
        restricted_pod(
            "stopped",
            image,
            env={"CRONFLEET_TASK": "sleep", "CRONFLEET_PARAMS": '{"seconds": 120}'},
        ),
        restricted_namespace,
    )

    def is_running() -> Object | None:
        pod = real_node.kube.get(PODS, "stopped", restricted_namespace)
        return pod if pod["status"].get("phase") == "Running" else None

    running: Object = eventually(is_running, timeout=60, what="runner pod running")
    # The runner logs run.started once its SIGTERM handler is in place; the
    # log comes through the API server from the kubelet, as `kubectl logs` does.
    eventually(
        lambda: "run.started" in pod_log(real_node, restricted_namespace, "stopped"),
        timeout=30,
        what="runner's run.started log line",
    )
    last: Object = running
    events = real_node.kube.watch(
        PODS,
        running["metadata"]["resourceVersion"],
        restricted_namespace,
        field_selector="metadata.name=stopped",
        timeout_seconds=60,
    )
    real_node.kube.delete(PODS, "stopped", restricted_namespace)
    # The kubelet writes the container's final status before it removes the pod.
    for event in events:
        if event["type"] in ("MODIFIED", "DELETED"):
            last = event["object"]
        if event["type"] == "DELETED":
            break
    state = terminated(last)
    assert state["exitCode"] == 143, state
    summary = json.loads(state["message"])
    assert summary["result"] == "Failed" and summary["data"]["signal"] == "SIGTERM", summary
