"""``make e2e``: the chart's images on the real node, under the integration suite.

Run inside the network namespace wrapper with ``CRONFLEET_NODE=kubelet``
(``python -m cronfleet_devcluster.netns -- env CRONFLEET_NODE=kubelet python -m
cronfleet_devcluster.e2e [PYTEST_ARG...]``). In order, each step failing with
its reason:

1. start the control plane with the real node, the image archives of ``make
   images`` imported into its containerd;
2. apply the CRD, as a platform team that keeps CRDs apart from releases does;
3. ``helm install`` ``charts/cronfleet`` into ``cronfleet-system`` with the
   chart's default images (the built ones) and ``pullPolicy=Never``, ``--wait``;
4. check that the operator's pod runs on the real node as the chart's
   ServiceAccount, with the chart's RBAC and no more;
5. run a focused part of the integration suite against it
   (``CRONFLEET_TEST_OPERATOR=external``), the operator's ``/metrics`` reached at
   its pod address on the node's bridge, over HTTPS with the token of a
   ServiceAccount bound to the chart's metrics-reader ClusterRole, as
   Prometheus would scrape it (``CRONFLEET_TEST_METRICS_TOKEN``);
6. stop everything.

Extra arguments go to pytest; ``E2E_TESTS`` replaces the default test files.
"""

from __future__ import annotations

import os
import shlex
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from cronfleet_devcluster.binaries import ensure_helm
from cronfleet_devcluster.containerimages import chart_repositories, package_version
from cronfleet_devcluster.controlplane import NODE_NAME, ControlPlane, ControlPlaneError
from cronfleet_devcluster.kube import PODS, SERVICEACCOUNTS, Kube, Object, Resource
from cronfleet_devcluster.node import KubeletNode, default_image_archives
from cronfleet_devcluster.testing import EventuallyTimeoutError, eventually

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "cronfleet"
CRD_FILE = REPO_ROOT / "crds" / "schedules.cronfleet.io.yaml"
RELEASE = "cronfleet"
RELEASE_NAMESPACE = "cronfleet-system"
# The chart's fullname for a release named like the chart: the Deployment's
# and the ServiceAccount's name.
FULLNAME = "cronfleet"
OPERATOR_SELECTOR = "app.kubernetes.io/name=cronfleet,app.kubernetes.io/instance=cronfleet"
METRICS_PORT = 8080
# The account the tests scrape /metrics as: bound to the chart's metrics-reader
# ClusterRole, as Prometheus' ServiceAccount would be.
METRICS_READER = "metrics-scraper"
CLUSTERROLEBINDINGS = Resource(
    "rbac.authorization.k8s.io/v1", "clusterrolebindings", namespaced=False
)
# Schedules and runs (with the restricted PodSecurity namespace), and chains:
# what a user's first install does, in minutes rather than the whole suite's quarter hour.
DEFAULT_TESTS = (
    "tests/integration/test_schedules.py",
    "tests/integration/test_runs.py",
    "tests/integration/test_chains.py",
)
# What the operator's ServiceAccount must and must not be allowed: the chart's
# least-privilege RBAC, not a cluster admin's.
ALLOWED = (
    ("list", "schedules.cronfleet.io"),
    ("patch", "schedules.cronfleet.io/status"),
    ("watch", "pods"),
    ("create", "cronjobs.batch"),
    ("create", "jobs.batch"),
    ("create", "events"),
    # /metrics checks scrapers' tokens (the chart's metrics.authentication).
    ("create", "tokenreviews.authentication.k8s.io"),
    ("create", "subjectaccessreviews.authorization.k8s.io"),
)
DENIED = (
    ("get", "secrets"),
    ("create", "pods"),
    ("*", "*"),
)


class E2eError(RuntimeError):
    """A step before the tests failed; the message says which and why."""


def metrics_reader_binding() -> Object:
    """Binds the scraping account to the chart's ``<fullname>-metrics-reader`` ClusterRole."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{FULLNAME}-e2e-{METRICS_READER}"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": f"{FULLNAME}-metrics-reader",
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": METRICS_READER, "namespace": RELEASE_NAMESPACE}
        ],
    }


def scrape_metrics(url: str, token: str, timeout: float = 5) -> str:
    """GET /metrics as the ServiceMonitor has Prometheus do it: the bearer token, and
    ``insecureSkipVerify`` for the operator's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        text: str = response.read().decode()
        return text


def _say(message: str) -> None:
    print(f"e2e: {message}", flush=True)


class Driver:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # The binaries are looked up (or built) when the control plane starts.
        self.plane = ControlPlane(directory=directory, node="kubelet")
        self.kube: Kube | None = None

    # -- steps -------------------------------------------------------------------

    def start_node(self) -> float:
        archives = default_image_archives()
        wanted = {
            f"{repository}:{package_version()}" for repository in chart_repositories().values()
        }
        if not archives:
            raise E2eError("no image archives under ~/.cache/cronfleet/images: run `make images`")
        try:
            seconds = self.plane.start(timeout=300)
        except ControlPlaneError as error:
            raise E2eError(
                f"the control plane with the real node did not start: {error}"
            ) from error
        self.kube = Kube.from_kubeconfig(self.plane.kubeconfig)
        imported = KubeletNode(self.plane, NODE_NAME).images()
        missing = sorted(
            image for image in wanted if not any(name.endswith(image) for name in imported)
        )
        if missing:
            raise E2eError(
                f"the real node has no {', '.join(missing)} after importing "
                f"{', '.join(str(a) for a in archives)}: run `make images`"
            )
        steps = ", ".join(f"{name} {value:.1f}s" for name, value in self.plane.node_timings.items())
        _say(f"control plane and real node Ready in {seconds:.1f}s ({steps})")
        return seconds

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.plane.binaries is not None
        argv = [str(self.plane.binaries.kubectl), "--kubeconfig", str(self.plane.kubeconfig), *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        if check and result.returncode != 0:
            raise E2eError(f"`kubectl {shlex.join(args)}` failed: {result.stderr.strip()}")
        return result

    def apply_crd(self) -> None:
        self.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
        self.kubectl(
            "wait", "--for=condition=Established", "crd/schedules.cronfleet.io", "--timeout=60s"
        )

    def helm_install(self) -> None:
        helm_home = self.directory / "helm"
        env = dict(
            os.environ,
            HELM_CACHE_HOME=str(helm_home / "cache"),
            HELM_CONFIG_HOME=str(helm_home / "config"),
            HELM_DATA_HOME=str(helm_home / "data"),
        )
        argv = [
            str(ensure_helm()),
            "--kubeconfig",
            str(self.plane.kubeconfig),
            "install",
            RELEASE,
            str(CHART),
            "--namespace",
            RELEASE_NAMESPACE,
            "--create-namespace",
            # The CRD is applied apart from the release (step 2).
            "--set",
            "crds.install=false",
            # The images are the chart's defaults, imported, never pulled.
            "--set",
            "operator.image.pullPolicy=Never",
            "--set",
            "runner.image.pullPolicy=Never",
            "--wait",
            "--timeout",
            "180s",
        ]
        started = time.monotonic()
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise E2eError(
                f"helm install failed: {result.stderr.strip()}\n{self._operator_diagnostics()}"
            )
        _say(f"helm install --wait took {time.monotonic() - started:.1f}s")

    def operator_pod(self) -> Object:
        assert self.kube is not None
        pods = [
            pod
            for pod in self.kube.items(PODS, RELEASE_NAMESPACE, label_selector=OPERATOR_SELECTOR)
            if not pod["metadata"].get("deletionTimestamp")
        ]
        if len(pods) != 1:
            raise E2eError(
                f"expected one operator pod in {RELEASE_NAMESPACE}, found "
                f"{[p['metadata']['name'] for p in pods]}\n{self._operator_diagnostics()}"
            )
        return pods[0]

    def metrics_token(self) -> str:
        """A token of an account allowed to read /metrics, and no more."""
        assert self.kube is not None
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": METRICS_READER},
        }
        self.kube.create(SERVICEACCOUNTS, account, RELEASE_NAMESPACE)
        self.kube.create(CLUSTERROLEBINDINGS, metrics_reader_binding())
        issued = self.kube.request(
            "POST",
            SERVICEACCOUNTS.path(RELEASE_NAMESPACE, METRICS_READER, "token"),
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3 * 3600},
            },
        )
        token: str = issued["status"]["token"]
        return token

    def check_operator(self, metrics_token: str) -> str:
        """The running operator pod's metrics URL, once its pod and RBAC are as the chart says."""

        def running() -> Object | None:
            pod = self.operator_pod()
            statuses = pod["status"].get("containerStatuses") or []
            if pod["status"].get("phase") == "Running" and statuses and statuses[0]["ready"]:
                return pod
            return None

        try:
            pod: Object = eventually(running, timeout=60, what="the operator pod Running and ready")
        except EventuallyTimeoutError as error:
            raise E2eError(f"{error}\n{self._operator_diagnostics()}") from error
        spec, status = pod["spec"], pod["status"]
        problems = []
        if spec.get("nodeName") != NODE_NAME:
            problems.append(f"runs on node {spec.get('nodeName')!r}, not {NODE_NAME}")
        if spec.get("serviceAccountName") != FULLNAME:
            problems.append(f"runs as ServiceAccount {spec.get('serviceAccountName')!r}")
        image = spec["containers"][0]["image"]
        expected_image = f"{chart_repositories()['cronfleet-operator']}:{package_version()}"
        if image != expected_image:
            problems.append(f"runs image {image}, not {expected_image}")
        account = f"system:serviceaccount:{RELEASE_NAMESPACE}:{FULLNAME}"
        for verb, resource in ALLOWED:
            if not self._can(account, verb, resource):
                problems.append(f"may not {verb} {resource}")
        for verb, resource in DENIED:
            if self._can(account, verb, resource):
                problems.append(f"may {verb} {resource}, which the chart does not grant")
        if problems:
            raise E2eError("the operator pod " + "; ".join(problems))
        metrics_url = f"https://{status['podIP']}:{METRICS_PORT}/metrics"

        def serving() -> bool:
            # Ready comes with the container's start (the chart has no
            # readiness probe); /metrics a moment later, or never if it crashed.
            # A 403 (the binding not in force yet) is retried too.
            return "cronfleet_" in scrape_metrics(metrics_url, metrics_token)

        try:
            eventually(serving, timeout=60, what=f"the operator's metrics at {metrics_url}")
        except EventuallyTimeoutError as error:
            raise E2eError(f"{error}\n{self._operator_diagnostics()}") from error
        restarts = self.operator_pod()["status"]["containerStatuses"][0]["restartCount"]
        if restarts:
            raise E2eError(
                f"the operator container restarted {restarts} times\n{self._operator_diagnostics()}"
            )
        _say(
            f"operator pod {pod['metadata']['name']} Running on {NODE_NAME} "
            f"as {account} ({image}); metrics at {metrics_url}"
        )
        return metrics_url

    def _can(self, account: str, verb: str, resource: str) -> bool:
        resource, _, subresource = resource.partition("/")
        extra = [f"--subresource={subresource}"] if subresource else []
        result = self.kubectl("auth", "can-i", verb, resource, *extra, "--as", account, check=False)
        return result.stdout.strip() == "yes"

    def _operator_diagnostics(self) -> str:
        """What a failed install leaves to look at: pods, events, the operator's log."""
        parts = []
        for args in (
            ("get", "pods", "-n", RELEASE_NAMESPACE, "-o", "wide"),
            ("get", "events", "-n", RELEASE_NAMESPACE, "--sort-by=.lastTimestamp"),
            ("logs", "-n", RELEASE_NAMESPACE, f"deployment/{FULLNAME}", "--tail=30"),
            ("logs", "-n", RELEASE_NAMESPACE, f"deployment/{FULLNAME}", "--previous", "--tail=30"),
        ):
            result = self.kubectl(*args, check=False)
            parts.append(f"$ kubectl {shlex.join(args)}\n{(result.stdout + result.stderr).strip()}")
        parts.append(f"kubelet log: {self.plane.log('kubelet')}")
        return "\n".join(parts)

    def run_tests(self, metrics_url: str, metrics_token: str, pytest_args: Sequence[str]) -> int:
        tests = shlex.split(os.environ.get("E2E_TESTS", "")) or list(DEFAULT_TESTS)
        env = dict(
            os.environ,
            CRONFLEET_NODE="kubelet",
            CRONFLEET_TEST_KUBECONFIG=str(self.plane.kubeconfig),
            CRONFLEET_TEST_OPERATOR="external",
            CRONFLEET_TEST_METRICS_URL=metrics_url,
            CRONFLEET_TEST_METRICS_TOKEN=metrics_token,
        )
        report = self.directory / "junit.xml"
        argv = [
            sys.executable,
            "-m",
            "pytest",
            *tests,
            "-v",
            # Every skip with its reason, so the run says what it did not test.
            "-rs",
            f"--junitxml={report}",
            *pytest_args,
        ]
        _say(f"running {shlex.join(argv[3:])}")
        code = subprocess.run(argv, cwd=REPO_ROOT, env=env, check=False).returncode
        if code == 5:
            _say("pytest collected no tests: failing")
            return 1
        return code

    def operator_log(self) -> None:
        """Keep the operator pod's log beside the others: the node goes with the run."""
        path = self.directory / "logs" / "operator-pod.log"
        result = self.kubectl(
            "logs", "-n", RELEASE_NAMESPACE, f"deployment/{FULLNAME}", "--tail=-1", check=False
        )
        path.write_text(result.stdout + result.stderr)
        _say(f"operator log: {path}; node and control-plane logs: {self.directory / 'logs'}")


def main(argv: Sequence[str] | None = None) -> int:
    pytest_args = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("CRONFLEET_NODE") != "kubelet":
        print(
            "e2e: runs on the real node: CRONFLEET_NODE=kubelet inside "
            "`python -m cronfleet_devcluster.netns --` (`make e2e`)",
            file=sys.stderr,
        )
        return 2
    directory = Path(os.environ.get("CRONFLEET_E2E_DIR", REPO_ROOT / ".cluster" / "e2e"))
    started = time.monotonic()
    driver = Driver(directory)
    code = 1
    try:
        driver.start_node()
        driver.apply_crd()
        driver.helm_install()
        metrics_token = driver.metrics_token()
        metrics_url = driver.check_operator(metrics_token)
        code = driver.run_tests(metrics_url, metrics_token, pytest_args)
    except E2eError as error:
        print(f"e2e: {error}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        if driver.kube is not None:
            driver.operator_log()
        stopping = time.monotonic()
        driver.plane.stop()
        _say(f"stopped in {time.monotonic() - stopping:.1f}s")
        _say(f"{'passed' if code == 0 else 'FAILED'} in {time.monotonic() - started:.0f}s")
    return code


if __name__ == "__main__":
    # A CI time-out sends SIGTERM (forwarded by the namespace's init): stop the
    # node and control plane on the way out, as an interrupt would.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
