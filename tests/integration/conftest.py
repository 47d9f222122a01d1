"""The session's cluster: the real local control plane, or the one named by
``CRONFLEET_TEST_KUBECONFIG``. Every test gets a namespace of its own."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cronfleet_devcluster.binaries import cached_binaries, ensure_binaries
from cronfleet_devcluster.controlplane import ControlPlane, free_port
from cronfleet_devcluster.kube import CRDS, Kube
from cronfleet_devcluster.testing import eventually, namespace_for_test

# The node agent runs any image it knows as a local program (busybox's `sh`
# among them); the real node runs only what was imported into its containerd,
# the chart's operator and runner images, and pulls nothing.
needs_agent_images = pytest.mark.skipif(
    os.environ.get("CRONFLEET_NODE") == "kubelet",
    reason="runs a busybox pod: the real node (CRONFLEET_NODE=kubelet) has only the "
    "cronfleet images imported and no registry to pull from",
)


@dataclass
class Cluster:
    kubeconfig: Path
    kube: Kube
    kubectl_path: str
    plane: ControlPlane | None  # None when the tests run against another cluster

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl_path, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )


def pytest_configure(config: pytest.Config) -> None:
    # A CI time-out or `kill` sends SIGTERM: turn it into an interrupt, so the
    # session's fixtures stop the control plane instead of leaving it running.
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    external = os.environ.get("CRONFLEET_TEST_KUBECONFIG")
    if external:
        kubectl = shutil.which("kubectl") or str(cached_binaries().kubectl)
        yield Cluster(Path(external), Kube.from_kubeconfig(external), kubectl, None)
        return
    # No skip on failure: a control plane that cannot start fails every test
    # with the reason, so a broken environment never passes as green.
    binaries = ensure_binaries()
    plane = ControlPlane(directory=tmp_path_factory.mktemp("cluster"), binaries=binaries)
    plane.start()
    try:
        yield Cluster(
            plane.kubeconfig, Kube.from_kubeconfig(plane.kubeconfig), str(binaries.kubectl), plane
        )
    finally:
        plane.stop()


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    with namespace_for_test(cluster.kube, request.node.name, {"cronfleet.io/test": "true"}) as name:
        yield name


# -- the operator under test ---------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / "schedules.cronfleet.io.yaml"


@dataclass
class OperatorProcess:
    """The operator as users run it: the `cronfleet-operator` program, out of process."""

    kubeconfig: Path
    log_path: Path
    extra_env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    metrics_url: str = ""
    # The bearer token to scrape an operator whose /metrics authenticates.
    metrics_token: str = ""
    external: bool = False

    def start(self) -> None:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), **self.extra_env)
        program = str(Path(sys.executable).parent / "cronfleet-operator")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [program, "--log-format", "plain"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def require_local(self) -> None:
        if self.external:
            pytest.skip("the operator under test runs inside the cluster")

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(CRD_FILE))

    def established() -> bool:
        crd = cluster.kube.get(CRDS, "schedules.cronfleet.io")
        conditions = crd.get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    # Seconds as a rule, but three control planes starting at once on two busy
    # cores have taken over 30 s to set up the new resource's watch cache; every
    # test of the session depends on it, so wait generously and say why it failed.
    eventually(established, timeout=180, interval=0.5, what="the Schedule CRD Established")


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, crd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    metrics_port = free_port()
    process = OperatorProcess(
        cluster.kubeconfig,
        log_path,
        {"CRONFLEET_WORKERS": "8", "CRONFLEET_METRICS_PORT": str(metrics_port)},
    )
    process.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    if os.environ.get("CRONFLEET_TEST_OPERATOR") == "external":
        # The cluster runs its own operator (a Helm install): do not start one;
        # its metrics are reached through CRONFLEET_TEST_METRICS_URL (a port-forward).
        process.external = True
        process.metrics_url = os.environ.get("CRONFLEET_TEST_METRICS_URL", "")
        process.metrics_token = os.environ.get("CRONFLEET_TEST_METRICS_TOKEN", "")
        yield process
        return
    process.start()
    try:
        yield process
    finally:
        process.stop()
        print(f"operator log: {log_path}")
