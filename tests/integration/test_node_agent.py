"""The local node agent runs pods the way a kubelet would, as far as cronfleet looks."""

from __future__ import annotations

import base64
import ipaddress
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from functools import partial

import pytest

from cronfleet_devcluster.controlplane import NODE_NAME, free_port
from cronfleet_devcluster.kube import CONFIGMAPS, EVENTS, NODES, PODS, SECRETS, Object
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


def container_status(cluster: Cluster, namespace: str, name: str) -> Object | None:
    statuses = (
        cluster.kube.get(PODS, name, namespace).get("status", {}).get("containerStatuses") or []
    )
    status: Object | None = statuses[0] if statuses else None
    return status


def waiting(cluster: Cluster, namespace: str, name: str, reason: str) -> Object:
    def probe() -> Object | None:
        status = container_status(cluster, namespace, name)
        state: Object | None = (status or {}).get("state", {}).get("waiting")
        return status if state and state.get("reason") == reason else None

    return eventually(probe, timeout=60, what=f"pod {name} waiting with {reason}")


def running(cluster: Cluster, namespace: str, name: str) -> Object:
    def probe() -> Object | None:
        pod = cluster.kube.get(PODS, name, namespace)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        return pod if statuses and "running" in statuses[0]["state"] else None

    return eventually(probe, timeout=30, what=f"pod {name} running")


def reasons(cluster: Cluster, namespace: str, name: str) -> list[tuple[str, str, str]]:
    events = cluster.kube.items(EVENTS, namespace, field_selector=f"involvedObject.name={name}")
    ordered = sorted(events, key=lambda e: (e.get("lastTimestamp") or "", e["metadata"]["name"]))
    return [(e["type"], e["reason"], e["message"]) for e in ordered]


# -- images ---------------------------------------------------------------------------


def test_unknown_image_fails_to_pull_then_backs_off(cluster: Cluster, namespace: str) -> None:
    cluster.kube.create(PODS, pod("web", "true", image="nginx:1.27"), namespace)
    first = waiting(cluster, namespace, "web", "ErrImagePull")["state"]["waiting"]
    assert "nginx:1.27" in first["message"] and "cronfleet-runner" in first["message"]
    # The kubelet pulls again after 10 s, then waits 20 s: ImagePullBackOff.
    backing_off = waiting(cluster, namespace, "web", "ImagePullBackOff")
    message = backing_off["state"]["waiting"]["message"]
    assert message.startswith('Back-off pulling image "nginx:1.27": ErrImagePull: '), message
    assert backing_off["restartCount"] == 0
    assert cluster.kube.get(PODS, "web", namespace)["status"]["phase"] == "Pending"
    seen = reasons(cluster, namespace, "web")
    assert ("Normal", "Pulling", 'Pulling image "nginx:1.27"') in seen
    assert any(
        kind == "Warning" and reason == "Failed" and text.startswith('Failed to pull image "nginx')
        for kind, reason, text in seen
    )
    assert ("Warning", "Failed", "Error: ErrImagePull") in seen
    assert ("Normal", "BackOff", 'Back-off pulling image "nginx:1.27"') in seen
    assert ("Warning", "Failed", "Error: ImagePullBackOff") in seen
    logs = cluster.kubectl("logs", "web", "-n", namespace, check=False)
    assert logs.returncode != 0
    assert 'container "main" in pod "web" is waiting to start' in logs.stderr


# -- restarts ---------------------------------------------------------------------------


def test_a_failing_container_restarts_with_crash_loop_back_off(
    cluster: Cluster, namespace: str
) -> None:
    body = pod("crashy", "echo attempt; exit 3")
    body["spec"]["restartPolicy"] = "OnFailure"
    created = cluster.kube.create(PODS, body, namespace)
    # The first failure restarts at once; the second waits 10 s.
    looping = waiting(cluster, namespace, "crashy", "CrashLoopBackOff")
    entered = time.monotonic()
    uid = created["metadata"]["uid"]
    assert looping["state"]["waiting"]["message"] == (
        f"back-off 10s restarting failed container=main pod=crashy_{namespace}({uid})"
    )
    assert looping["restartCount"] == 1
    last = looping["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    status = cluster.kube.get(PODS, "crashy", namespace)["status"]
    assert status["phase"] == "Running"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "False"

    def restarted() -> Object | None:
        current = container_status(cluster, namespace, "crashy")
        return current if current and current["restartCount"] >= 2 else None

    eventually(restarted, timeout=30, what="second restart")
    assert time.monotonic() - entered > 7  # 10 s after the second failure finished
    again = waiting(cluster, namespace, "crashy", "CrashLoopBackOff")
    assert again["state"]["waiting"]["message"].startswith("back-off 20s restarting")
    seen = reasons(cluster, namespace, "crashy")
    assert any(
        r == "BackOff" and t.startswith("Back-off restarting failed container main")
        for _, r, t in seen
    )


def test_a_container_that_succeeds_under_on_failure_is_not_restarted(
    cluster: Cluster, namespace: str
) -> None:
    body = pod("once", "echo done")
    body["spec"]["restartPolicy"] = "OnFailure"
    cluster.kube.create(PODS, body, namespace)
    assert terminated(cluster, namespace, "once")["exitCode"] == 0
    pod_now = cluster.kube.get(PODS, "once", namespace)
    assert pod_now["status"]["phase"] == "Succeeded"
    assert pod_now["status"]["containerStatuses"][0]["restartCount"] == 0


# -- stopping ---------------------------------------------------------------------------


def delete_and_watch(
    cluster: Cluster, namespace: str, name: str, *delete_args: str
) -> tuple[Object, float]:
    """Delete a pod and return its last state before it went, and how long it took."""
    resource_version = cluster.kube.get(PODS, name, namespace)["metadata"]["resourceVersion"]
    started = time.monotonic()
    cluster.kubectl("delete", "pod", name, "-n", namespace, "--wait=false", *delete_args)
    last: Object = {}
    for event in cluster.kube.watch(
        PODS,
        resource_version,
        namespace,
        field_selector=f"metadata.name={name}",
        timeout_seconds=60,
    ):
        if event["type"] in ("MODIFIED", "DELETED"):
            last = event["object"]
        if event["type"] == "DELETED":
            return last, time.monotonic() - started
    raise AssertionError(f"pod {name} was not deleted within 60 s; last seen: {last}")


def final_state(pod_object: Object) -> Object:
    state: Object = pod_object["status"]["containerStatuses"][0]["state"]["terminated"]
    return state


def test_deleting_a_pod_sends_sigterm_then_the_pod_goes(cluster: Cluster, namespace: str) -> None:
    marker = f"/tmp/cronfleet-sigterm-{namespace}"
    script = f'trap "echo got-term > {marker}; exit 143" TERM; while true; do sleep 0.1; done'
    cluster.kube.create(PODS, pod("sleeper", script), namespace)
    running(cluster, namespace, "sleeper")
    gone, seconds = delete_and_watch(cluster, namespace, "sleeper")
    with open(marker) as handle:
        assert handle.read().strip() == "got-term"
    # It handled SIGTERM: 143 well within the 5 s grace period, no SIGKILL.
    state = final_state(gone)
    assert (state["exitCode"], state["reason"]) == (143, "Error")
    assert seconds < 4


def test_ignoring_sigterm_is_killed_after_the_grace_period_with_137(
    cluster: Cluster, namespace: str
) -> None:
    # `sleep` as the container's main process: it has no SIGTERM handler, and
    # a PID 1 without a handler ignores the signal, so only SIGKILL stops it.
    body = pod("stubborn", "")
    body["spec"]["containers"][0]["command"] = ["sleep", "300"]
    body["spec"]["terminationGracePeriodSeconds"] = 3
    cluster.kube.create(PODS, body, namespace)
    running(cluster, namespace, "stubborn")
    gone, seconds = delete_and_watch(cluster, namespace, "stubborn")
    state = final_state(gone)
    assert (state["exitCode"], state["reason"]) == (137, "Error")
    assert 3 <= seconds < 15
    seen = reasons(cluster, namespace, "stubborn")
    assert ("Normal", "Killing", "Stopping container main") in seen


def test_a_deletions_grace_period_overrides_the_pods(cluster: Cluster, namespace: str) -> None:
    body = pod("patient", 'trap "" TERM; while true; do sleep 0.1; done')
    body["spec"]["terminationGracePeriodSeconds"] = 60
    cluster.kube.create(PODS, body, namespace)
    running(cluster, namespace, "patient")
    gone, seconds = delete_and_watch(cluster, namespace, "patient", "--grace-period=2")
    assert final_state(gone)["exitCode"] == 137
    assert 2 <= seconds < 15


# -- pod addresses ---------------------------------------------------------------------


def test_each_pod_has_its_own_address_and_can_listen_on_it(
    cluster: Cluster, namespace: str
) -> None:
    port = free_port()
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    # The server binds the address the downward API gives it: the pod's own.
    script = f'exec python3 -m http.server --bind "$POD_IP" {port}'
    for name in ("web-a", "web-b"):
        cluster.kube.create(PODS, pod(name, script, env=env), namespace)
    addresses = []
    for name in ("web-a", "web-b"):
        status = running(cluster, namespace, name)["status"]
        address = status["podIP"]
        assert status["podIPs"] == [{"ip": address}]
        assert status["hostIP"] == "127.0.0.1"
        assert ipaddress.ip_address(address) in ipaddress.ip_network("127.0.0.0/8")
        assert address != "127.0.0.1"
        addresses.append(address)
    assert addresses[0] != addresses[1]

    # Both listen on the same port, each on its own address.
    def answers(address: str) -> bool:
        with urllib.request.urlopen(f"http://{address}:{port}/", timeout=5) as response:
            return bool(response.status == 200)

    for address in addresses:
        assert eventually(partial(answers, address), timeout=20, what=f"{address}:{port}")


# -- logs ---------------------------------------------------------------------------------


def test_kubectl_logs_of_a_finished_pod(cluster: Cluster, namespace: str) -> None:
    # stdout and stderr are two pipes, as in a container: the pause orders them.
    script = "for i in 1 2 3 4; do echo out $i; done; sleep 0.3; echo oops >&2"
    cluster.kube.create(PODS, pod("talker", script), namespace)
    terminated(cluster, namespace, "talker")
    logs = cluster.kubectl("logs", "talker", "-n", namespace)
    assert logs.stdout == "out 1\nout 2\nout 3\nout 4\noops\n"
    tail = cluster.kubectl("logs", "talker", "-n", namespace, "--tail=2")
    assert tail.stdout == "out 4\noops\n"
    limited = cluster.kubectl("logs", "talker", "-n", namespace, "--limit-bytes=8")
    assert limited.stdout == "out 1\nou"
    stamped = cluster.kubectl("logs", "talker", "-n", namespace, "--timestamps", "--tail=1")
    moment, _, text = stamped.stdout.partition(" ")
    assert text == "oops\n" and moment.endswith("Z") and moment[:4].isdigit()
    since = cluster.kubectl("logs", "talker", "-n", namespace, "--since=1h")
    assert since.stdout == logs.stdout


def test_kubectl_logs_follows_a_running_pod(cluster: Cluster, namespace: str) -> None:
    script = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"
    cluster.kube.create(PODS, pod("ticker", script), namespace)
    running(cluster, namespace, "ticker")
    follower = subprocess.Popen(
        [
            cluster.kubectl_path,
            "--kubeconfig",
            str(cluster.kubeconfig),
            "logs",
            "-f",
            "ticker",
            "-n",
            namespace,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        lines = [follower.stdout.readline() for _ in range(8)]
    finally:
        follower.terminate()
        follower.wait(10)
    assert lines[:2] == ["tick 0\n", "tick 1\n"]
    # Lines keep coming while following, in order.
    assert lines == [f"tick {i}\n" for i in range(8)]


def test_kubectl_logs_previous_after_a_restart(cluster: Cluster, namespace: str) -> None:
    # The pod's working directory survives restarts: it counts the attempts.
    script = (
        "n=$(cat attempts 2>/dev/null || echo 0); n=$((n+1)); echo $n > attempts; "
        'echo "attempt $n"; if [ $n -ge 2 ]; then exec sleep 300; fi; exit 1'
    )
    body = pod("retry", script)
    body["spec"]["restartPolicy"] = "OnFailure"
    cluster.kube.create(PODS, body, namespace)

    def restarted_and_running() -> bool:
        status = container_status(cluster, namespace, "retry")
        return bool(status and status["restartCount"] == 1 and "running" in status["state"])

    eventually(restarted_and_running, timeout=30, what="restarted once and running")
    current = eventually(
        lambda: cluster.kubectl("logs", "retry", "-n", namespace).stdout, timeout=10
    )
    assert current == "attempt 2\n"
    previous = cluster.kubectl("logs", "retry", "-n", namespace, "--previous")
    assert previous.stdout == "attempt 1\n"


def test_the_log_endpoint_requires_a_client_certificate(cluster: Cluster, namespace: str) -> None:
    if cluster.plane is None:
        pytest.skip("needs the local control plane's CA")
    cluster.kube.create(PODS, pod("secret-talk", "echo private"), namespace)
    terminated(cluster, namespace, "secret-talk")
    node = cluster.kube.get(NODES, NODE_NAME)
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    assert port > 0
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    pki = cluster.plane.directory / "pki"
    url = f"https://127.0.0.1:{port}/containerLogs/{namespace}/secret-talk/main"
    anonymous = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with (
        pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)),
        urllib.request.urlopen(url, context=anonymous, timeout=10) as response,
    ):
        response.read()
    # The API server's kubelet client certificate is let in.
    api_server = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    api_server.load_cert_chain(
        str(pki / "apiserver-kubelet-client.crt"), str(pki / "apiserver-kubelet-client.key")
    )
    with urllib.request.urlopen(url, context=api_server, timeout=10) as response:
        assert response.read() == b"private\n"
