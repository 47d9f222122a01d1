"""The chart's alerts, unit-tested with Prometheus' own promtool.

The chart is rendered with the project's Helm (no ``--kube-version``: the
build carries Helm's release defaults), the PrometheusRule's groups are
written to ``rules.yaml``, and ``promtool test rules`` runs every
``tests/alerts/*.yaml`` against them. Helm and promtool are built from the
Go module proxy on first use and cached (``make binaries`` builds both).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cronfleet.metrics import PENDING_PHASE, RUN_RESULTS, Metrics
from cronfleet.models import Phase
from cronfleet_devcluster.binaries import (
    ensure_helm,
    ensure_promtool,
    helm_kube_version,
    prometheus_release,
)

HERE = Path(__file__).resolve().parent
CHART = HERE.parents[1] / "charts" / "cronfleet"
ALERT_TESTS = sorted(HERE.glob("*.yaml"))
# Rendered rule files the test files name, and the values each is rendered with.
RULE_VARIANTS = {
    "rules.yaml": [],
    "rules-operator-job.yaml": ["--set", "prometheusRule.operatorJob=cronfleet"],
}
# Labels Prometheus adds to every series of a ServiceMonitor's target.
TARGET_LABELS = {"job", "instance", "pod", "service", "endpoint", "container"}


def run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def helm() -> Path:
    return ensure_helm()


@pytest.fixture(scope="module")
def promtool() -> Path:
    return ensure_promtool()


def render(helm: Path, *args: str) -> list[dict[str, Any]]:
    result = run(helm, "template", "cf", CHART, "--namespace", "cronfleet-system", *args)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module")
def rules_dir(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("alerts")
    for name, values in RULE_VARIANTS.items():
        (rule,) = render(
            helm,
            "--set",
            "prometheusRule.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
            *values,
        )
        (directory / name).write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return directory


def test_helm_template_needs_no_kube_version(helm: Path) -> None:
    # The chart asks for Kubernetes >= 1.31; a Helm built without its release
    # link flags assumes 1.20 and refuses it.
    kinds = {document["kind"] for document in render(helm)}
    assert {"Deployment", "CustomResourceDefinition"} <= kinds
    major, minor = helm_kube_version()
    assert (major, minor) == ("1", "34")


def test_prometheus_module_versions_name_the_release() -> None:
    assert prometheus_release("v0.316.0") == "3.16.0"
    assert prometheus_release("v0.305.1") == "3.5.1"


def test_service_monitor_keeps_the_schedules_namespace_label(helm: Path) -> None:
    (monitor,) = render(
        helm,
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--show-only",
        "templates/servicemonitor.yaml",
    )
    assert [endpoint["honorLabels"] for endpoint in monitor["spec"]["endpoints"]] == [True]


def test_rendered_rules_pass_promtool_check(promtool: Path, rules_dir: Path) -> None:
    for name in RULE_VARIANTS:
        result = run(promtool, "check", "rules", name, cwd=rules_dir)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", ALERT_TESTS, ids=[path.stem for path in ALERT_TESTS])
def test_alert_rules(promtool: Path, rules_dir: Path, test_file: Path) -> None:
    shutil.copy(test_file, rules_dir / test_file.name)
    result = run(promtool, "test", "rules", test_file.name, cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def alert_tests() -> Iterator[dict[str, Any]]:
    for path in ALERT_TESTS:
        groups: list[dict[str, Any]] = yaml.safe_load(path.read_text())["tests"]
        yield from groups


def test_every_alert_is_tested_firing_and_silent(rules_dir: Path) -> None:
    groups = yaml.safe_load((rules_dir / "rules.yaml").read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    fired: set[str] = set()
    silent: set[str] = set()
    for group in alert_tests():
        for case in group.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else silent).add(case["alertname"])
    assert alerts - fired == set(), "alerts never shown firing"
    assert alerts - silent == set(), "alerts never shown silent"


SERIES = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>.*)\}$")
LABEL = re.compile(r'(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>[^"]*)"')


def exported_label_names() -> dict[str, set[frozenset[str]]]:
    """Label names of each series the operator exports for a Schedule with a full status."""
    body = {
        "metadata": {
            "name": "nightly",
            "namespace": "team-a",
            "creationTimestamp": "2026-11-20T08:00:00Z",
        },
        "spec": {"cron": "0 2 * * *", "task": "http"},
        "status": {
            "phase": "Active",
            "cronJob": "nightly",
            "nextRunTime": "2026-11-27T02:00:00Z",
            "lastSuccessfulTime": "2026-11-26T02:00:07Z",
            "counts": {"succeeded": 1, "failed": 1, "cancelled": 1, "missed": 1},
            "conditions": [{"type": "RunBlocked", "status": "True"}],
        },
    }
    text = generate_latest(Metrics(lambda: [body]).registry).decode()
    exported: dict[str, set[frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            exported.setdefault(sample.name, set()).add(frozenset(sample.labels))
    return exported


def test_alert_tests_use_series_as_the_operator_exports_them() -> None:
    exported = exported_label_names()
    allowed_values = {
        "result": set(RUN_RESULTS.values()),
        "phase": {PENDING_PHASE, *(phase.value for phase in Phase)},
    }
    checked = 0
    for group in alert_tests():
        for item in group["input_series"]:
            match = SERIES.match(item["series"])
            assert match, item["series"]
            name = match["name"]
            if not name.startswith("cronfleet_"):
                continue
            labels = dict(LABEL.findall(match["labels"]))
            own = frozenset(labels) - TARGET_LABELS
            assert own in exported.get(name, set()), f"{name}{sorted(own)} is not exported"
            for label, values in allowed_values.items():
                if label in labels:
                    assert labels[label] in values, item["series"]
            checked += 1
    assert checked > 20


def test_alerts_and_dashboard_ask_only_for_exported_series() -> None:
    text = generate_latest(Metrics(list).registry).decode()
    exported: set[str] = set()
    for family in text_string_to_metric_families(text):
        exported.add(family.name)
        if family.type == "counter":
            exported.add(f"{family.name}_total")
        if family.type == "histogram":
            exported |= {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum")}
    queries = (CHART / "files" / "alerts.yaml").read_text()
    queries += (CHART / "files" / "dashboard.json").read_text()
    used = set(re.findall(r"\bcronfleet_[a-z_]+", queries))
    assert used and used <= exported, used - exported
