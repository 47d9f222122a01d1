"""The local node agent runs pods the way a kubelet would, as far as cronfleet looks."""

from __future__ import annotations

import base64

from cronfleet_devcluster.kube import CONFIGMAPS, EVENTS, PODS, SECRETS, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, needs_agent_images

# What the agent imitates is checked against a real kubelet in tests/e2e.
pytestmark = needs_agent_images


def pod(name: str, script: str, **container: object) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {"name": "main", "image": "busybox", "command": ["sh", "-c", script], **container}
            ],
        },
    }


def terminated(cluster: Cluster, namespace: str, name: str) -> Object:
    def probe() -> Object | None:
        status = cluster.kube.get(PODS, name, namespace).get("status", {})
        for container in status.get("containerStatuses") or []:
            if "terminated" in container["state"] and status.get("phase") in (
                "Succeeded",
                "Failed",
            ):
                state: Object = container["state"]["terminated"]
                return state
        return None

    return eventually(probe, timeout=30, what=f"pod {name} terminated")


def test_env_resolves_literals_secrets_configmaps_and_fields(
    cluster: Cluster, namespace: str
) -> None:
    cluster.kube.create(
        SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"token": base64.b64encode(b"s3cret").decode()},
        },
        namespace,
    )
    cluster.kube.create(
        CONFIGMAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"REGION": "eu", "TIER": "gold"},
        },
        namespace,
    )
    env = [
        {"name": "GREETING", "value": "hello"},
        {"name": "COMPOSED", "value": "$(GREETING)-world"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    script = 'echo "$COMPOSED $TOKEN $POD $CFG_REGION $CFG_TIER" > /dev/termination-log'
    body = pod(
        "env", script, env=env, envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}]
    )
    cluster.kube.create(PODS, body, namespace)
    state = terminated(cluster, namespace, "env")
    assert state["exitCode"] == 0
    assert state["message"].strip() == "hello-world s3cret env eu gold"


def test_missing_secret_is_a_config_error_until_it_appears(
    cluster: Cluster, namespace: str
) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "t"}}}]
    cluster.kube.create(
        PODS, pod("waits", 'echo "$TOKEN" > /dev/termination-log', env=env), namespace
    )

    def waiting_reason() -> str | None:
        statuses = (
            cluster.kube.get(PODS, "waits", namespace).get("status", {}).get("containerStatuses")
            or []
        )
        return statuses[0]["state"].get("waiting", {}).get("reason") if statuses else None

    assert eventually(waiting_reason, timeout=30) == "CreateContainerConfigError"
    cluster.kube.create(
        SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "later"},
            "data": {"t": base64.b64encode(b"arrived").decode()},
        },
        namespace,
    )
    assert terminated(cluster, namespace, "waits")["message"].strip() == "arrived"


def test_unknown_image_fails_to_pull_with_a_clear_message(cluster: Cluster, namespace: str) -> None:
    cluster.kube.create(PODS, pod("web", "true", image="nginx:1.27"), namespace)

    def waiting() -> Object | None:
        statuses = (
            cluster.kube.get(PODS, "web", namespace).get("status", {}).get("containerStatuses")
            or []
        )
        state: Object | None = statuses[0]["state"].get("waiting") if statuses else None
        return state

    state = eventually(waiting, timeout=30, what="waiting state")
    assert state["reason"] == "ErrImagePull"
    assert "nginx:1.27" in state["message"] and "cronfleet-runner" in state["message"]
    events = cluster.kube.items(EVENTS, namespace, field_selector="involvedObject.name=web")
    assert any(e["reason"] == "Failed" and e["type"] == "Warning" for e in events)


def test_deleting_a_pod_sends_sigterm_then_the_pod_goes(cluster: Cluster, namespace: str) -> None:
    marker = f"/tmp/cronfleet-sigterm-{namespace}"
    script = f'trap "echo got-term > {marker}; exit 0" TERM; while true; do sleep 0.1; done'
    cluster.kube.create(PODS, pod("sleeper", script), namespace)
    eventually(
        lambda: cluster.kube.get(PODS, "sleeper", namespace)["status"].get("phase") == "Running",
        timeout=30,
        what="pod running",
    )
    cluster.kubectl("delete", "pod", "sleeper", "-n", namespace, "--wait=false")
    eventually(
        lambda: cluster.kube.get_or_none(PODS, "sleeper", namespace) is None,
        timeout=30,
        what="pod deleted",
    )
    with open(marker) as handle:
        assert handle.read().strip() == "got-term"


def test_ignoring_sigterm_is_killed_after_the_grace_period(
    cluster: Cluster, namespace: str
) -> None:
    body = pod("stubborn", 'trap "" TERM; while true; do sleep 0.1; done')
    body["spec"]["terminationGracePeriodSeconds"] = 2
    cluster.kube.create(PODS, body, namespace)
    eventually(
        lambda: cluster.kube.get(PODS, "stubborn", namespace)["status"].get("phase") == "Running",
        timeout=30,
        what="pod running",
    )
    cluster.kubectl("delete", "pod", "stubborn", "-n", namespace, "--wait=false")
    eventually(
        lambda: cluster.kube.get_or_none(PODS, "stubborn", namespace) is None,
        timeout=20,
        what="pod deleted after SIGKILL",
    )
