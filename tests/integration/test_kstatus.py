"""GitOps health: what kstatus (sigs.k8s.io/cli-utils, as used by Flux health
checks, kpt and kubectl-style waits) concludes from live Schedules, and the
Argo CD health check's install command from the README."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cronfleet_devcluster.binaries import ensure_kstatus
from cronfleet_devcluster.kube import CONFIGMAPS, CRONJOBS, SCHEDULES, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_runs import NEVER, run_now
from tests.integration.test_schedules import schedule, status_of, wait_phase

REPO_ROOT = Path(__file__).resolve().parents[2]
UNIT_FIXTURES = REPO_ROOT / "tests" / "unit" / "fixtures"
FIXTURES = UNIT_FIXTURES / "argocd" / "testdata"
ARGOCD_HEALTH = REPO_ROOT / "charts" / "cronfleet" / "files" / "argocd-health.lua"
ARGOCD_KEY = "resource.customizations.health.cronfleet.io_Schedule"


@pytest.fixture(scope="session")
def kstatus_program() -> Path:
    return ensure_kstatus()


def kstatus_of(program: Path, text: str) -> list[dict[str, str]]:
    """The helper's verdicts for JSON objects (one per line, or a List) on its stdin."""
    result = subprocess.run(
        [str(program)], input=text, capture_output=True, text=True, check=True, timeout=30
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def kstatus(cluster: Cluster, program: Path, namespace: str, name: str) -> dict[str, str]:
    """As a user would ask: `kubectl get schedule NAME -o json | kstatus`."""
    fetched = cluster.kubectl("get", "schedule", name, "-n", namespace, "-o", "json")
    (verdict,) = kstatus_of(program, fetched.stdout)
    assert (verdict["kind"], verdict["name"]) == ("Schedule", name)
    return verdict


def failing_spec(on_exhausted: str) -> dict[str, Any]:
    return {
        "cron": NEVER,
        "task": "command",
        "params": {"argv": ["sh", "-c", "echo upstream down >&2; exit 1"]},
        "retry": {"maxRetries": 0, "onExhausted": on_exhausted},
    }


def wait_failed(cluster: Cluster, namespace: str, name: str) -> Object:
    run_now(cluster, namespace, name, "go")
    return wait_phase(cluster, namespace, name, "Failed")


def test_active_is_current(
    cluster: Cluster, namespace: str, operator: OperatorProcess, kstatus_program: Path
) -> None:
    cluster.kube.create(SCHEDULES, schedule("feed"), namespace)
    wait_phase(cluster, namespace, "feed", "Active")
    assert kstatus(cluster, kstatus_program, namespace, "feed")["status"] == "Current"


def test_paused_is_current(
    cluster: Cluster, namespace: str, operator: OperatorProcess, kstatus_program: Path
) -> None:
    cluster.kube.create(SCHEDULES, schedule("drain", suspend=True), namespace)
    wait_phase(cluster, namespace, "drain", "Paused")
    assert kstatus(cluster, kstatus_program, namespace, "drain")["status"] == "Current"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"task": "no-such-task"}, "spec.task"),
        ({"serviceAccountName": "syncer"}, "spec.serviceAccountName"),
    ],
    ids=["unknown-task", "missing-service-account"],
)
def test_invalid_is_failed(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kstatus_program: Path,
    spec: dict[str, Any],
    field: str,
) -> None:
    cluster.kube.create(SCHEDULES, schedule("digest", **spec), namespace)
    status = wait_phase(cluster, namespace, "digest", "Invalid")
    verdict = kstatus(cluster, kstatus_program, namespace, "digest")
    # Failed, not InProgress: waiting will not fix an invalid spec, so a
    # Flux health check fails at once instead of at its timeout.
    assert verdict["status"] == "Failed", (verdict, status.get("conditions"))
    assert verdict["message"].startswith(field)


def test_retries_exhausted_with_suspend_is_failed(
    cluster: Cluster, namespace: str, operator: OperatorProcess, kstatus_program: Path
) -> None:
    cluster.kube.create(SCHEDULES, schedule("doomed", **failing_spec("Suspend")), namespace)
    wait_phase(cluster, namespace, "doomed", "Active")
    status = wait_failed(cluster, namespace, "doomed")
    eventually(
        lambda: cluster.kube.get(CRONJOBS, "doomed", namespace)["spec"]["suspend"] is True,
        timeout=15,
        what="CronJob suspended",
    )
    verdict = kstatus(cluster, kstatus_program, namespace, "doomed")
    assert verdict["status"] == "Failed", (verdict, status.get("conditions"))
    assert "retries exhausted" in verdict["message"]


def test_retries_exhausted_with_continue_is_in_progress(
    cluster: Cluster, namespace: str, operator: OperatorProcess, kstatus_program: Path
) -> None:
    """Failed with onExhausted Continue is not Stalled: it keeps its cadence and a
    success makes it Ready again, so kstatus waits (InProgress) instead of failing."""
    cluster.kube.create(SCHEDULES, schedule("best-effort", **failing_spec("Continue")), namespace)
    wait_phase(cluster, namespace, "best-effort", "Active")
    status = wait_failed(cluster, namespace, "best-effort")
    assert cluster.kube.get(CRONJOBS, "best-effort", namespace)["spec"]["suspend"] is False
    verdict = kstatus(cluster, kstatus_program, namespace, "best-effort")
    assert verdict["status"] == "InProgress", (verdict, status.get("conditions"))


def test_unobserved_spec_change_is_in_progress(
    cluster: Cluster, namespace: str, operator: OperatorProcess, kstatus_program: Path
) -> None:
    # With the operator stopped, the window between a spec change and the
    # status for it stays open as long as the test needs.
    operator.require_local()
    cluster.kube.create(SCHEDULES, schedule("feed", cron="0 * * * *"), namespace)
    wait_phase(cluster, namespace, "feed", "Active")
    operator.stop()
    try:
        cluster.kube.patch(SCHEDULES, "feed", {"spec": {"cron": "*/10 * * * *"}}, namespace)
        assert status_of(cluster, namespace, "feed")["observedGeneration"] == 1
        verdict = kstatus(cluster, kstatus_program, namespace, "feed")
        assert verdict == {
            "kind": "Schedule",
            "namespace": namespace,
            "name": "feed",
            "status": "InProgress",
            "message": "Schedule generation is 2, but latest observed generation is 1",
        }
    finally:
        operator.start()
    wait_phase(cluster, namespace, "feed", "Active", generation=2)
    assert kstatus(cluster, kstatus_program, namespace, "feed")["status"] == "Current"


def test_kubectl_list_output_is_read(
    cluster: Cluster, namespace: str, operator: OperatorProcess, kstatus_program: Path
) -> None:
    for name, spec in (("good", {}), ("paused", {"suspend": True}), ("bad", {"task": "nope"})):
        cluster.kube.create(SCHEDULES, schedule(name, **spec), namespace)
    for name, phase in (("good", "Active"), ("paused", "Paused"), ("bad", "Invalid")):
        wait_phase(cluster, namespace, name, phase)
    listing = cluster.kubectl("get", "schedules", "-n", namespace, "-o", "json").stdout
    verdicts = {v["name"]: v["status"] for v in kstatus_of(kstatus_program, listing)}
    assert verdicts == {"bad": "Failed", "good": "Current", "paused": "Current"}


# kstatus on the objects the Argo CD check is tested with: those the operator
# writes with the kstatus conditions, and those it wrote before them (with a
# Ready condition only, the "-landed" files), which kstatus cannot tell from
# a Schedule still working: Ready=False reads as InProgress, never Failed.
EXPECTED_FOR_FIXTURES = {
    "active": "Current",
    "active-landed": "Current",
    "paused": "Current",
    "paused-landed": "Current",
    "invalid": "Failed",
    "invalid-landed": "InProgress",
    "failed-suspend": "Failed",
    "failed-landed": "InProgress",
    "failed-continue": "InProgress",
    "run-blocked": "Current",
    "generation-not-observed": "InProgress",
    # kstatus cannot tell a Schedule the operator has not seen yet from one
    # without status conventions; the Argo CD check says Progressing.
    "no-status": "Current",
    "completed": "Current",
    "deleting": "Terminating",
}


def test_fixture_objects_are_read(kstatus_program: Path) -> None:
    files = sorted(FIXTURES.glob("*.yaml"))
    objects = [yaml.safe_load(path.read_text()) for path in files]
    # One object per line for half of them, a List for the rest: both inputs.
    half = len(objects) // 2
    lines = [json.dumps(obj) for obj in objects[:half]]
    lines.append(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects[half:]}))
    verdicts = kstatus_of(kstatus_program, "\n".join(lines))
    assert [v["name"] for v in verdicts] == [obj["metadata"]["name"] for obj in objects]
    assert {path.stem: v["status"] for path, v in zip(files, verdicts, strict=True)} == (
        EXPECTED_FOR_FIXTURES
    )


def test_landed_fixture_objects_are_read(kstatus_program: Path) -> None:
    """Schedules as the landed 0.1 operator wrote them (the operator's unit-test fixtures)."""
    files = sorted(UNIT_FIXTURES.glob("landed-*.json"))
    assert files
    objects = [json.loads(path.read_text()) for path in files]
    verdicts = kstatus_of(kstatus_program, "\n".join(json.dumps(obj) for obj in objects))
    assert [(v["namespace"], v["name"]) for v in verdicts] == [
        (obj["metadata"]["namespace"], obj["metadata"]["name"]) for obj in objects
    ]
    by_file = {path.stem: v for path, v in zip(files, verdicts, strict=True)}
    assert all(v["status"] != "Unknown" for v in verdicts), by_file
    # Active with a retry pending: Ready=True, so Current.
    assert by_file["landed-0.1-failing-schedule"]["status"] == "Current"


def test_argocd_health_check_install_command(cluster: Cluster, namespace: str) -> None:
    """The README's command adds the check to an existing argocd-cm and keeps its other keys."""
    cluster.kube.create(
        CONFIGMAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "argocd-cm", "labels": {"app.kubernetes.io/part-of": "argocd"}},
            "data": {"url": "https://argocd.example.test"},
        },
        namespace,
    )
    kubectl = [cluster.kubectl_path, "--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
    rendered = subprocess.run(
        [
            *kubectl,
            "create",
            "configmap",
            "argocd-cm",
            f"--from-file={ARGOCD_KEY}={ARGOCD_HEALTH}",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    ).stdout
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--field-manager=cronfleet-health", "-f", "-"],
        input=rendered,
        capture_output=True,
        text=True,
        check=True,
    )
    stored = cluster.kube.get(CONFIGMAPS, "argocd-cm", namespace)
    assert stored["data"] == {
        "url": "https://argocd.example.test",
        ARGOCD_KEY: ARGOCD_HEALTH.read_text(),
    }
    assert stored["metadata"]["labels"] == {"app.kubernetes.io/part-of": "argocd"}
