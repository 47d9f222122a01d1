"""Containment: what the API server stores but no Schedule needs (params nested
thousands of levels deep) is refused without taking the operator down, and the
liveness endpoint answers for the operator's own work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronfleet_devcluster.controlplane import free_port
from cronfleet_devcluster.kube import CRONJOBS, SCHEDULES
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_schedules import events_for, schedule, wait_phase


def deep_schedule_json(name: str, depth: int) -> str:
    """A Schedule whose params nest ``depth`` levels, as JSON text.

    Written as text: this test process decodes with Python's default
    recursion limit, so it must never hold such an object itself.
    """
    params = '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)
    return json.dumps(schedule(name, params="PARAMS")).replace('"PARAMS"', params)


def status_without_spec(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The status alone: kubectl (Go) reads the deep object, this process only its status."""
    text = cluster.kubectl(
        "get", "schedules.cronfleet.io", name, "-n", namespace, "-o", "jsonpath={.status}"
    ).stdout
    status: dict[str, Any] = json.loads(text) if text else {}
    return status


def wait_invalid(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = status_without_spec(cluster, namespace, name)
        return status if status.get("phase") == "Invalid" else None

    return eventually(probe, timeout=30, what=f"{name} phase Invalid")


def assert_operator_running(operator: OperatorProcess) -> None:
    if operator.external:
        return
    assert operator.process is not None
    assert operator.process.poll() is None, operator.log_tail()


@pytest.mark.parametrize("depth", [1_500, 9_000])
def test_deeply_nested_params_are_invalid_and_contained(
    cluster: Cluster, namespace: str, operator: OperatorProcess, depth: int
) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=deep_schedule_json("deep", depth))
    status = wait_invalid(cluster, namespace, "deep")
    expected = (
        f"spec.params: an object nested {depth} levels deep is not valid: "
        "params may nest objects and arrays at most 32 levels deep"
    )
    assert expected in status["message"], status["message"]
    assert (status["conditions"][0]["status"], status["conditions"][0]["reason"]) == (
        "False",
        "InvalidSpec",
    )
    events = eventually(
        lambda: [e for e in events_for(cluster, namespace, "deep") if e["reason"] == "InvalidSpec"],
        timeout=15,
    )
    assert events[0]["type"] == "Warning"
    assert expected in events[0]["message"]
    assert cluster.kube.get_or_none(CRONJOBS, "deep", namespace) is None

    # The operator is still there and handles the next Schedule.
    cluster.kube.create(SCHEDULES, schedule("after"), namespace)
    wait_phase(cluster, namespace, "after", "Active")
    assert_operator_running(operator)
    if not operator.external:
        # The status write's answer (the whole deep object) was decoded too:
        # no reconcile of the deep Schedule failed and was retried.
        assert f"reconcile of {namespace}/deep failed" not in operator.log_path.read_text()


def test_operator_starts_with_deep_params_in_its_first_listing(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    operator.require_local()
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=deep_schedule_json("deep", 5_000))
    wait_invalid(cluster, namespace, "deep")
    # A restart lists every Schedule, the deep one included, before watching.
    operator.restart()
    cluster.kube.create(SCHEDULES, schedule("after-restart"), namespace)
    wait_phase(cluster, namespace, "after-restart", "Active")
    assert_operator_running(operator)


@pytest.fixture
def liveness_operator(cluster: Cluster, crd: None, namespace: str, tmp_path: Path) -> Iterator[str]:
    """An operator of its own with ``--liveness``, watching only the test's (empty) namespace."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    program = str(Path(sys.executable).parent / "cronfleet-operator")
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), CRONFLEET_METRICS_PORT="0")
    log_path = tmp_path / "operator.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [program, "--log-format", "plain", "--namespace", namespace, "--liveness", url],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        print(f"liveness operator log: {log_path}")


def test_liveness_endpoint_reports_the_background_tasks(liveness_operator: str) -> None:
    def probe() -> dict[str, Any] | None:
        with urllib.request.urlopen(liveness_operator, timeout=5) as response:
            assert response.status == 200
            body: dict[str, Any] = json.loads(response.read())
        # The timers loop and the workers, once the startup handler has run.
        return body if body.get("background", {}).get("running") else None

    body = eventually(probe, timeout=30, what="an answer from /healthz")
    assert body["background"]["running"] >= 2
