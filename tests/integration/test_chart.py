"""The Helm chart: lint, render, schema, server-side validation, and a real install
whose operator runs with exactly the RBAC the chart grants."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cronfleet_devcluster.binaries import KUBERNETES_VERSION, ensure_helm
from cronfleet_devcluster.controlplane import free_port
from cronfleet_devcluster.kube import (
    CRONJOBS,
    NAMESPACES,
    SCHEDULES,
    SERVICEACCOUNTS,
    ApiError,
    Kube,
    Object,
    Resource,
)
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_schedules import schedule

CHART = Path(__file__).resolve().parents[2] / "charts" / "cronfleet"
KUBE_VERSION = KUBERNETES_VERSION.lstrip("v")  # the version of the cluster the tests use
DEPLOYMENTS = Resource("apps/v1", "deployments")
ROLEBINDINGS = Resource("rbac.authorization.k8s.io/v1", "rolebindings")
CLUSTERROLES = Resource("rbac.authorization.k8s.io/v1", "clusterroles", namespaced=False)
CLUSTERROLEBINDINGS = Resource(
    "rbac.authorization.k8s.io/v1", "clusterrolebindings", namespaced=False
)
CRDS = Resource("apiextensions.k8s.io/v1", "customresourcedefinitions", namespaced=False)
ALL_OPTIONS = [
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "prometheusRule.enabled=true",
    "--set",
    "dashboard.enabled=true",
]


@pytest.fixture(scope="module")
def helm(cluster: Cluster) -> Iterator[Any]:
    binary = str(ensure_helm())

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [binary, "--kubeconfig", str(cluster.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    yield run


def render(helm: Any, *args: str) -> list[Object]:
    output = helm(
        "template",
        "cf",
        str(CHART),
        "--namespace",
        "cronfleet-system",
        "--kube-version",
        KUBE_VERSION,
        *args,
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def kinds(documents: list[Object]) -> list[str]:
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in documents)


def test_lint(helm: Any) -> None:
    result = helm("lint", "--strict", str(CHART), *ALL_OPTIONS)
    assert "0 chart(s) failed" in result.stdout


def test_template_defaults_and_combinations(helm: Any) -> None:
    defaults = render(helm)
    assert kinds(defaults) == sorted(
        [
            "ClusterRole/cf-cronfleet",
            "ClusterRole/cf-cronfleet-discovery",
            "ClusterRole/cronfleet-edit",
            "ClusterRole/cronfleet-view",
            "ClusterRoleBinding/cf-cronfleet",
            "ClusterRoleBinding/cf-cronfleet-discovery",
            "ClusterRole/cf-cronfleet-metrics-auth",
            "ClusterRoleBinding/cf-cronfleet-metrics-auth",
            "ClusterRole/cf-cronfleet-metrics-reader",
            "CustomResourceDefinition/schedules.cronfleet.io",
            "Deployment/cf-cronfleet",
            "Service/cf-cronfleet-metrics",
            "ServiceAccount/cf-cronfleet",
            "ValidatingAdmissionPolicy/cf-cronfleet-schedule-author",
            "ValidatingAdmissionPolicyBinding/cf-cronfleet-schedule-author",
        ]
    )
    deployment = next(d for d in defaults if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "ghcr.io/cronfleet/cronfleet-operator:0.1.0"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["CRONFLEET_RUNNER_IMAGE"] == "ghcr.io/cronfleet/cronfleet-runner:0.1.0"
    crd = next(d for d in defaults if d["kind"] == "CustomResourceDefinition")
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}

    scoped = render(
        helm,
        "--set",
        "watchNamespaces={team-a,team-b}",
        "--set",
        "crds.install=false",
        "--set",
        "operator.image.digest=sha256:" + "a" * 64,
    )
    names = kinds(scoped)
    assert "Role/cf-cronfleet" in names and "ClusterRole/cf-cronfleet" not in names
    assert sorted(d["metadata"]["namespace"] for d in scoped if d["kind"] == "RoleBinding") == [
        "team-a",
        "team-b",
    ]
    assert not [d for d in scoped if d["kind"] == "CustomResourceDefinition"]
    deployment = next(d for d in scoped if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith("@sha256:" + "a" * 64)
    assert {"name": "CRONFLEET_NAMESPACES", "value": "team-a,team-b"} in container["env"]

    everything = kinds(render(helm, *ALL_OPTIONS))
    for kind in (
        "ServiceMonitor/cf-cronfleet",
        "PrometheusRule/cf-cronfleet",
        "ConfigMap/cf-cronfleet-dashboard",
    ):
        assert kind in everything


def test_metrics_authentication_on_and_off(helm: Any) -> None:
    def rendered(*args: str) -> tuple[dict[str, Object], dict[str, str], Object]:
        documents = render(helm, *ALL_OPTIONS, "--set", "watchNamespaces={team-a}", *args)
        by_name = {f"{d['kind']}/{d['metadata']['name']}": d for d in documents}
        container = by_name["Deployment/cf-cronfleet"]["spec"]["template"]["spec"]["containers"][0]
        env = {item["name"]: item.get("value") for item in container["env"]}
        endpoint = by_name["ServiceMonitor/cf-cronfleet"]["spec"]["endpoints"][0]
        return by_name, env, endpoint

    # On by default: the operator may create the reviews (cluster-wide even when
    # it watches one namespace), Prometheus gets a role to bind, and sends its token.
    on, env, endpoint = rendered()
    assert env["CRONFLEET_METRICS_AUTH"] == "kubernetes"
    assert "CRONFLEET_METRICS_CERT_FILE" not in env
    assert on["ClusterRole/cf-cronfleet-metrics-auth"]["rules"] == [
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["tokenreviews"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["subjectaccessreviews"],
            "verbs": ["create"],
        },
    ]
    binding = on["ClusterRoleBinding/cf-cronfleet-metrics-auth"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cf-cronfleet", "namespace": "cronfleet-system"}
    ]
    assert on["ClusterRole/cf-cronfleet-metrics-reader"]["rules"] == [
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}
    ]
    assert endpoint["scheme"] == "https"
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert endpoint["tlsConfig"] == {"insecureSkipVerify": True}

    # A mounted certificate instead of the self-signed one.
    mounted, env, _ = rendered("--set", "metrics.authentication.certSecret=metrics-tls")
    pod = mounted["Deployment/cf-cronfleet"]["spec"]["template"]["spec"]
    assert {"name": "metrics-tls", "secret": {"secretName": "metrics-tls"}} in pod["volumes"]
    assert env["CRONFLEET_METRICS_CERT_FILE"] == "/etc/cronfleet/metrics-tls/tls.crt"
    assert env["CRONFLEET_METRICS_KEY_FILE"] == "/etc/cronfleet/metrics-tls/tls.key"

    # Off: plain HTTP, no review rights, no role, no token.
    off, env, endpoint = rendered("--set", "metrics.authentication.enabled=false")
    assert env["CRONFLEET_METRICS_AUTH"] == "none"
    assert not [name for name in off if "metrics-auth" in name or "metrics-reader" in name]
    assert not {"scheme", "bearerTokenFile", "tlsConfig"} & set(endpoint)
    rules = [rule for d in off.values() if "Role" in d["kind"] for rule in d.get("rules") or []]
    assert not [rule for rule in rules if "tokenreviews" in rule.get("resources", [])]


@pytest.mark.parametrize(
    ("flag", "complaint"),
    [
        ("operator.workers=many", "/operator/workers"),
        ("watchNamespaces=team-a", "/watchNamespaces"),
        ("operator.image.pullPolicy=Sometimes", "/operator/image/pullPolicy"),
        ("surprise=true", "surprise"),
        ("metrics.port=70000", "/metrics/port"),
        ("metrics.authentication.enabled=maybe", "/metrics/authentication/enabled"),
    ],
)
def test_schema_rejects_bad_values(helm: Any, flag: str, complaint: str) -> None:
    result = helm(
        "template", "cf", str(CHART), "--kube-version", KUBE_VERSION, "--set", flag, check=False
    )
    assert result.returncode != 0
    assert complaint in result.stderr


MONITORING_CRDS: list[Object] = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": plural[:-1],
                "listKind": f"{kind}List",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    for kind, plural in (
        ("ServiceMonitor", "servicemonitors"),
        ("PrometheusRule", "prometheusrules"),
    )
]


def test_every_rendered_manifest_is_accepted_by_the_api_server(
    helm: Any, cluster: Cluster, crd: None
) -> None:
    # The Prometheus operator's kinds, registered so their objects can be validated.
    for body in MONITORING_CRDS:
        if cluster.kube.get_or_none(CRDS, body["metadata"]["name"]) is None:
            cluster.kube.create(CRDS, body)
    for body in MONITORING_CRDS:
        cluster.kubectl(
            "wait",
            "--for=condition=Established",
            f"crd/{body['metadata']['name']}",
            "--timeout=30s",
        )
    ensure_namespace(cluster, "cronfleet-system")
    # The local CNI does not enforce NetworkPolicies: they are checked by the API
    # server's validation only.
    policies = [
        "--set",
        "watchNamespaces={default}",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.runs.enabled=true",
        "--set",
        "networkPolicy.runs.denyCidrs={10.96.0.0/12}",
        "--set-json",
        'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":'
        '{"kubernetes.io/metadata.name":"monitoring"}}}]',
    ]
    for args in ([], ALL_OPTIONS, ["--set", "watchNamespaces={default}"], policies):
        manifests = helm(
            "template",
            "cf",
            str(CHART),
            "--namespace",
            "cronfleet-system",
            "--kube-version",
            KUBE_VERSION,
            *args,
        ).stdout
        result = cluster.kubectl(
            "apply", "--dry-run=server", "-f", "-", input=manifests, check=False
        )
        assert result.returncode == 0, result.stderr


def ensure_namespace(cluster: Cluster, name: str) -> None:
    if cluster.kube.get_or_none(NAMESPACES, name) is None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        cluster.kube.create(NAMESPACES, body)


def user_token(cluster: Cluster, namespace: str, name: str) -> str:
    cluster.kube.create(
        SERVICEACCOUNTS,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        namespace,
    )
    issued = cluster.kube.request(
        "POST",
        SERVICEACCOUNTS.path(namespace, name, "token"),
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    token: str = issued["status"]["token"]
    return token


def scrape(url: str, token: str | None = None) -> tuple[int, str]:
    """GET as Prometheus does with ``insecureSkipVerify``: the certificate is self-signed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def test_helm_install_runs_the_operator_with_the_charts_rbac(
    helm: Any, cluster: Cluster, crd: None, operator: OperatorProcess
) -> None:
    if cluster.plane is None or operator.external:
        pytest.skip("installs into the local control plane, whose agent runs the operator pod")
    release_ns, team_a, team_b = "cronfleet-system", "team-a", "team-b"
    for name in (release_ns, team_a, team_b):
        ensure_namespace(cluster, name)
    metrics_port, health_port = free_port(), free_port()
    values = [
        "--set",
        "operator.image.repository=cronfleet-operator",
        "--set",
        "operator.logFormat=plain",
        "--set",
        f"metrics.port={metrics_port}",
        "--set",
        f"health.port={health_port}",
        "--set",
        f"watchNamespaces={{{team_a},{team_b}}}",
        # The session installed the CRD already, as a platform team that manages
        # CRDs apart from releases would.
        "--set",
        "crds.install=false",
    ]
    # The session's operator watches every namespace: make way for the installed one.
    operator.stop()
    try:
        helm(
            "install",
            "cf",
            str(CHART),
            "--namespace",
            release_ns,
            *values,
            "--wait",
            "--timeout",
            "120s",
        )
        eventually(
            lambda: (
                cluster.kube.get(DEPLOYMENTS, "cf-cronfleet", release_ns)
                .get("status", {})
                .get("readyReplicas")
                == 1
            ),
            timeout=60,
            what="operator Deployment ready",
        )

        # A namespace user with cronfleet-edit in team-a only.
        cluster.kube.create(
            ROLEBINDINGS,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "alice-edit"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cronfleet-edit",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "alice", "namespace": team_a}],
            },
            team_a,
        )
        alice = Kube(cluster.kube.credentials).with_token(user_token(cluster, team_a, "alice"))

        # cronfleet-edit alone is not enough: a Schedule runs Jobs, so its author
        # must be allowed to create Jobs there (the chart's admission policy).
        def refused() -> str | None:
            try:
                alice.create(SCHEDULES, schedule("nightly"), team_a)
            except ApiError as error:
                return error.message if error.status == 403 else None
            alice.delete(SCHEDULES, "nightly", team_a)  # the policy is not in force yet
            return None

        message = eventually(refused, timeout=30, interval=0.5, what="the admission policy")
        assert "may not create jobs in namespace team-a" in message
        cluster.kube.create(
            ROLEBINDINGS,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "alice-batch"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "edit",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "alice", "namespace": team_a}],
            },
            team_a,
        )
        alice.create(SCHEDULES, schedule("nightly"), team_a)
        eventually(
            lambda: (
                (cluster.kube.get(SCHEDULES, "nightly", team_a).get("status") or {}).get("phase")
                == "Active"
            ),
            timeout=60,
            what="Schedule Active",
        )
        assert cluster.kube.get(CRONJOBS, "nightly", team_a)["metadata"]["ownerReferences"]
        with pytest.raises(ApiError) as denied:
            alice.create(SCHEDULES, schedule("elsewhere"), team_b)
        assert denied.value.status == 403
        # The built-in edit role aggregates cronfleet-edit.
        edit = cluster.kube.get(CLUSTERROLES, "edit")
        assert any("schedules" in rule.get("resources", []) for rule in edit["rules"])

        # The dashboard and the alerts ask only for series the operator exports,
        # scraped as the chart's ServiceMonitor has Prometheus do it: over HTTPS
        # with the token of an account bound to the metrics-reader role.
        cluster.kube.create(
            CLUSTERROLEBINDINGS,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "cf-test-metrics-reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cf-cronfleet-metrics-reader",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "metrics-scraper", "namespace": release_ns}
                ],
            },
        )
        reader = user_token(cluster, release_ns, "metrics-scraper")
        metrics_url = f"https://127.0.0.1:{metrics_port}/metrics"
        assert scrape(metrics_url)[0] == 401

        def allowed() -> str | None:
            status, text = scrape(metrics_url, reader)
            return text if status == 200 else None

        exported = metric_names(
            eventually(allowed, timeout=30, interval=1, what="a scrape the reader role allows")
        )
        queries = (CHART / "files" / "alerts.yaml").read_text()
        queries += json.dumps(json.loads((CHART / "files" / "dashboard.json").read_text()))
        used = set(re.findall(r"\bcronfleet_[a-z_]+", queries))
        assert used and used <= exported, used - exported

        # Upgrade with another runner image: the operator restarts, CronJobs follow.
        helm(
            "upgrade",
            "cf",
            str(CHART),
            "--namespace",
            release_ns,
            *values,
            "--set",
            "runner.image.tag=0.2.0",
            "--wait",
            "--timeout",
            "120s",
        )
        eventually(
            lambda: cluster.kube.get(CRONJOBS, "nightly", team_a)["spec"]["jobTemplate"]["spec"][
                "template"
            ]["spec"]["containers"][0]["image"].endswith(":0.2.0"),
            timeout=90,
            what="CronJob on the upgraded runner image",
        )

        helm("uninstall", "cf", "--namespace", release_ns, "--wait")
        eventually(
            lambda: cluster.kube.get_or_none(DEPLOYMENTS, "cf-cronfleet", release_ns) is None,
            timeout=60,
            what="Deployment removed",
        )
        # The Schedules outlive the release.
        assert cluster.kube.get_or_none(SCHEDULES, "nightly", team_a) is not None
    finally:
        helm("uninstall", "cf", "--namespace", release_ns, check=False)
        if cluster.kube.get_or_none(CLUSTERROLEBINDINGS, "cf-test-metrics-reader") is not None:
            cluster.kube.delete(CLUSTERROLEBINDINGS, "cf-test-metrics-reader")
        for name in (team_a, team_b):
            cluster.kube.delete(NAMESPACES, name)
        operator.start()


# -- replicas and leader election -------------------------------------------------------


def test_one_replica_recreates_and_two_elect_a_leader(helm: Any, cluster: Cluster) -> None:
    def rendered(*args: str) -> tuple[dict[str, Object], Object, dict[str, Any]]:
        documents = render(helm, *args)
        by_kind = {f"{d['kind']}/{d['metadata']['name']}": d for d in documents}
        deployment = by_kind["Deployment/cf-cronfleet"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {
            item["name"]: item.get("value") or item.get("valueFrom") for item in container["env"]
        }
        return by_kind, deployment, env

    one, deployment, env = rendered()
    assert deployment["spec"]["replicas"] == 1
    # Without an election, an old and a new pod must never both run.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "PodDisruptionBudget/cf-cronfleet" not in one
    assert "Role/cf-cronfleet-leader-election" not in one
    assert "CRONFLEET_LEADER_ELECTION" not in env
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}

    two, deployment, env = rendered(
        "--set", "replicaCount=2", "--set", "leaderElection.leaseDuration=20"
    )
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert two["PodDisruptionBudget/cf-cronfleet"]["spec"]["minAvailable"] == 1
    assert env["CRONFLEET_LEADER_ELECTION"] == "true"
    assert env["CRONFLEET_LEADER_ELECTION_LEASE_NAME"] == "cf-cronfleet"
    assert env["CRONFLEET_LEADER_ELECTION_LEASE_DURATION"] == "20"
    assert env["CRONFLEET_LEADER_ELECTION_RENEW_DEADLINE"] == "10"
    assert env["CRONFLEET_LEADER_ELECTION_RETRY_PERIOD"] == "2"
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    role = two["Role/cf-cronfleet-leader-election"]
    assert role["metadata"]["namespace"] == "cronfleet-system"
    granted = {
        (verb, tuple(rule.get("resourceNames") or ()))
        for rule in role["rules"]
        if rule["resources"] == ["leases"]
        for verb in rule["verbs"]
    }
    assert granted == {("create", ()), ("get", ("cf-cronfleet",)), ("update", ("cf-cronfleet",))}
    binding = two["RoleBinding/cf-cronfleet-leader-election"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cf-cronfleet", "namespace": "cronfleet-system"}
    ]
    # The API server accepts all of it.
    ensure_namespace(cluster, "cronfleet-system")
    manifests = helm(
        "template",
        "cf",
        str(CHART),
        "--namespace",
        "cronfleet-system",
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "replicaCount=2",
    ).stdout
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifests, check=False)
    assert result.returncode == 0, result.stderr


def test_the_election_role_grants_the_lease_and_nothing_more(helm: Any, cluster: Cluster) -> None:
    release_ns = f"cf-election-{uuid.uuid4().hex[:5]}"
    ensure_namespace(cluster, release_ns)
    try:
        documents = render(helm, "--namespace", release_ns, "--set", "replicaCount=2")
        rbac = [d for d in documents if d["metadata"]["name"] == "cf-cronfleet-leader-election"]
        assert len(rbac) == 2
        for document in rbac:
            document["metadata"]["namespace"] = release_ns
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
        account = f"system:serviceaccount:{release_ns}:cf-cronfleet"

        def can(verb: str, resource: str, namespace: str = release_ns) -> bool:
            result = cluster.kubectl(
                "auth", "can-i", verb, resource, "-n", namespace, "--as", account, check=False
            )
            return result.stdout.strip() == "yes"

        assert can("create", "leases.coordination.k8s.io")
        assert can("get", "leases.coordination.k8s.io/cf-cronfleet")
        assert can("update", "leases.coordination.k8s.io/cf-cronfleet")
        assert not can("update", "leases.coordination.k8s.io/someone-elses")
        assert not can("delete", "leases.coordination.k8s.io/cf-cronfleet")
        assert not can("get", "leases.coordination.k8s.io/cf-cronfleet", "default")
    finally:
        cluster.kube.delete(NAMESPACES, release_ns)


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["replicaCount=0"], "/replicaCount"),
        (["leaderElection.retryPeriod=soon"], "/leaderElection/retryPeriod"),
        (
            ["replicaCount=2", "leaderElection.renewDeadline=15"],
            "leaderElection.leaseDuration (15) must be longer than "
            "leaderElection.renewDeadline (15)",
        ),
        (
            ["replicaCount=2", "leaderElection.retryPeriod=9"],
            "leaderElection.renewDeadline (10) must be longer than 1.2 times "
            "leaderElection.retryPeriod (9)",
        ),
    ],
)
def test_bad_election_values_are_refused_at_render(
    helm: Any, flags: list[str], complaint: str
) -> None:
    args = [arg for flag in flags for arg in ("--set", flag)]
    result = helm("template", "cf", str(CHART), "--kube-version", KUBE_VERSION, *args, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr
