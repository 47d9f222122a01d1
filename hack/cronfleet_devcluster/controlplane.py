"""Start and stop a real local Kubernetes control plane.

etcd, kube-apiserver and kube-controller-manager run as local processes on
loopback; the node agent (``cronfleet_devcluster.agent``) plays the kubelet,
or, with ``CRONFLEET_NODE=kubelet``, a real kubelet on containerd
(``cronfleet_devcluster.node``) runs the pods.
The same class serves the pytest session fixture and ``make cluster``: all
state (certificates, tokens, data, logs, process ids, kubeconfig) lives in one
directory, so a detached cluster can be stopped later from its directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cronfleet_devcluster import node as kubelet_node
from cronfleet_devcluster.binaries import Binaries, ensure_binaries
from cronfleet_devcluster.pki import CertificateError, issue_certificate, openssl

NODE_NAME = "cronfleet-local"
NODE_KINDS = ("agent", "kubelet")
SERVICE_CIDR = "10.96.0.0/16"

# The controllers the product relies on, plus the ones a Deployment (the
# operator's own install) and namespaced service accounts need.
CONTROLLERS = (
    "cronjob-controller",
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "ttl-after-finished-controller",
    "root-ca-certificate-publisher-controller",
    "deployment-controller",
    "replicaset-controller",
    "pod-garbage-collector-controller",
    "clusterrole-aggregation-controller",
)


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message says which part and why."""


def node_kind_from_environment() -> str:
    """Which node runs the pods: ``$CRONFLEET_NODE``, the node agent unless it says ``kubelet``."""
    kind = os.environ.get("CRONFLEET_NODE", "") or "agent"
    if kind not in NODE_KINDS:
        raise ControlPlaneError(
            f"CRONFLEET_NODE={kind!r} is not a node kind; use one of {', '.join(NODE_KINDS)}"
        )
    return kind


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_pki(pki: Path) -> None:
    """A CA, the API server's serving certificate and the service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-subj",
        "/CN=cronfleet-local-ca",
        cwd=pki,
    )
    issue_certificate(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
        "DNS:kubernetes.default.svc.cluster.local\n"
        "extendedKeyUsage=serverAuth\n",
    )
    openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-out",
        "sa.key",
        cwd=pki,
    )
    openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_agent_endpoint_pki(pki: Path, node_name: str) -> None:
    """The node agent's kubelet endpoint: its serving certificate on 127.0.0.1, and the
    client certificate the API server presents to it (``kubectl logs``)."""
    issue_certificate(
        pki,
        "node-agent-serving",
        f"/CN={node_name}",
        f"subjectAltName=IP:127.0.0.1,DNS:{node_name}\nextendedKeyUsage=serverAuth\n",
    )
    issue_certificate(
        pki,
        "apiserver-kubelet-client",
        "/O=system:masters/CN=kube-apiserver-kubelet-client",
        "extendedKeyUsage=clientAuth\n",
    )


def agent_api_server_arguments(pki: Path) -> list[str]:
    """The API server reaches the agent as a kubelet: InternalIP, both sides verified."""
    return [
        "--kubelet-client-certificate",
        str(pki / "apiserver-kubelet-client.crt"),
        "--kubelet-client-key",
        str(pki / "apiserver-kubelet-client.key"),
        "--kubelet-certificate-authority",
        str(pki / "ca.crt"),
        "--kubelet-preferred-address-types",
        "InternalIP",
    ]


def agent_endpoint_arguments(pki: Path) -> list[str]:
    return [
        "--tls-cert-file",
        str(pki / "node-agent-serving.crt"),
        "--tls-private-key-file",
        str(pki / "node-agent-serving.key"),
        "--client-ca-file",
        str(pki / "ca.crt"),
    ]


def kubeconfig_text(server: str, ca_file: Path, token: str, user: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "cronfleet-local",
                    "cluster": {"server": server, "certificate-authority": str(ca_file)},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {"name": "cronfleet-local", "context": {"cluster": "cronfleet-local", "user": user}}
            ],
            "current-context": "cronfleet-local",
        },
        indent=2,
    )


@dataclass
class ControlPlane:
    """A local control plane whose whole state lives under ``directory``."""

    directory: Path
    binaries: Binaries | None = None
    # False: no node at all. Which node runs when one does: `node`.
    with_agent: bool = True
    node: str = field(default_factory=node_kind_from_environment)
    # How long the real node's steps took at the last start, in seconds.
    node_timings: dict[str, float] = field(default_factory=dict)
    processes: dict[str, int] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = field(default_factory=dict)
    api_port: int = 0

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def log(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    # -- lifecycle ------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> float:
        """Start every part, wait until each is ready, and return the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        binaries = self.binaries or ensure_binaries()
        self.binaries = binaries
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "logs").mkdir(exist_ok=True)
        # Every start is a fresh cluster: new keys would not read old tokens anyway.
        shutil.rmtree(self.directory / "etcd", ignore_errors=True)
        shutil.rmtree(self.directory / "agent", ignore_errors=True)
        pki = self.directory / "pki"
        write_pki(pki)
        real_node = self.with_agent and self.node == "kubelet"
        api_server_extra: list[str] = []
        if real_node:
            try:
                kubelet_node.require_isolated_network()
                kubelet_node.write_node_pki(pki, NODE_NAME)
            except (kubelet_node.NodeError, CertificateError) as error:
                raise ControlPlaneError(str(error)) from error
            api_server_extra = kubelet_node.api_server_arguments(pki)
        elif self.with_agent:
            write_agent_endpoint_pki(pki, NODE_NAME)
            api_server_extra = agent_api_server_arguments(pki)
        admin_token = secrets.token_hex(16)
        kcm_token = secrets.token_hex(16)
        agent_token = secrets.token_hex(16)
        # Static tokens keep the credentials simple; RBAC still decides what
        # every identity may do, and system:masters is the bootstrap admin.
        (pki / "tokens.csv").write_text(
            f'{admin_token},admin,uid-admin,"system:masters"\n'
            f'{kcm_token},system:kube-controller-manager,uid-kcm,"system:masters"\n'
            f'{agent_token},system:node:{NODE_NAME},uid-node,"system:nodes,system:masters"\n'
        )
        etcd_port, etcd_peer_port = free_port(), free_port()
        # With the real node, the API server also serves the `kubernetes`
        # Service's address and port, so pods reach it as in a cluster.
        self.api_port = kubelet_node.API_SERVICE_PORT if real_node else free_port()
        kcm_port = free_port()
        self._write_state()
        try:
            self._spawn(
                "etcd",
                [
                    str(binaries.etcd),
                    "--name",
                    "default",
                    "--data-dir",
                    str(self.directory / "etcd"),
                    "--listen-client-urls",
                    f"http://127.0.0.1:{etcd_port}",
                    "--advertise-client-urls",
                    f"http://127.0.0.1:{etcd_port}",
                    "--listen-peer-urls",
                    f"http://127.0.0.1:{etcd_peer_port}",
                    "--initial-advertise-peer-urls",
                    f"http://127.0.0.1:{etcd_peer_port}",
                    "--initial-cluster",
                    f"default=http://127.0.0.1:{etcd_peer_port}",
                    "--listen-metrics-urls",
                    "",
                    # A throwaway cluster: durability costs seconds per test here.
                    "--unsafe-no-fsync",
                    "--log-level",
                    "warn",
                ],
            )
            self._wait_http("etcd", f"http://127.0.0.1:{etcd_port}/health", deadline)
            self._spawn(
                "kube-apiserver",
                [
                    str(binaries.kube_apiserver),
                    "--etcd-servers",
                    f"http://127.0.0.1:{etcd_port}",
                    "--bind-address",
                    "127.0.0.1",
                    "--advertise-address",
                    "127.0.0.1",
                    "--secure-port",
                    str(self.api_port),
                    "--tls-cert-file",
                    str(pki / "apiserver.crt"),
                    "--tls-private-key-file",
                    str(pki / "apiserver.key"),
                    "--client-ca-file",
                    str(pki / "ca.crt"),
                    "--token-auth-file",
                    str(pki / "tokens.csv"),
                    "--authorization-mode",
                    "RBAC",
                    "--enable-admission-plugins",
                    # OwnerReferencesPermissionEnforcement: owner references that block
                    # deletion need update on the owner's finalizers, as on OpenShift.
                    "PodSecurity,NamespaceLifecycle,ServiceAccount,"
                    "OwnerReferencesPermissionEnforcement",
                    "--service-account-issuer",
                    "https://kubernetes.default.svc.cluster.local",
                    "--service-account-key-file",
                    str(pki / "sa.pub"),
                    "--service-account-signing-key-file",
                    str(pki / "sa.key"),
                    "--api-audiences",
                    "https://kubernetes.default.svc.cluster.local",
                    "--service-cluster-ip-range",
                    SERVICE_CIDR,
                    "--allow-privileged=true",
                    "--endpoint-reconciler-type",
                    "none",
                    "--profiling=false",
                    "-v",
                    "1",
                    # A later --bind-address wins over the loopback one above.
                    *api_server_extra,
                ],
            )
            self._wait_http(
                "kube-apiserver",
                f"{self.server}/readyz",
                deadline,
                token=admin_token,
                ca=pki / "ca.crt",
            )
            self.kubeconfig.write_text(
                kubeconfig_text(self.server, pki / "ca.crt", admin_token, "admin")
            )
            kcm_kubeconfig = self.directory / "kube-controller-manager.kubeconfig"
            kcm_kubeconfig.write_text(
                kubeconfig_text(
                    self.server, pki / "ca.crt", kcm_token, "system:kube-controller-manager"
                )
            )
            self._spawn(
                "kube-controller-manager",
                [
                    str(binaries.kube_controller_manager),
                    "--kubeconfig",
                    str(kcm_kubeconfig),
                    "--authentication-kubeconfig",
                    str(kcm_kubeconfig),
                    "--authorization-kubeconfig",
                    str(kcm_kubeconfig),
                    "--leader-elect=false",
                    "--controllers",
                    ",".join(
                        (*CONTROLLERS, *kubelet_node.CONTROLLERS) if real_node else CONTROLLERS
                    ),
                    "--bind-address",
                    "127.0.0.1",
                    "--secure-port",
                    str(kcm_port),
                    "--service-account-private-key-file",
                    str(pki / "sa.key"),
                    "--root-ca-file",
                    str(pki / "ca.crt"),
                    "--use-service-account-credentials=false",
                    "-v",
                    "1",
                ],
            )
            self._wait_http(
                "kube-controller-manager",
                f"https://127.0.0.1:{kcm_port}/healthz",
                deadline,
                insecure=True,
            )
            if real_node:
                self.node_timings = kubelet_node.KubeletNode(
                    self, NODE_NAME, kubelet_node.default_image_archives()
                ).start(deadline)
            elif self.with_agent:
                agent_kubeconfig = self.directory / "agent.kubeconfig"
                agent_kubeconfig.write_text(
                    kubeconfig_text(
                        self.server, pki / "ca.crt", agent_token, f"system:node:{NODE_NAME}"
                    )
                )
                ready_file = self.directory / "agent.ready"
                ready_file.unlink(missing_ok=True)
                self._spawn(
                    "node-agent",
                    [
                        sys.executable,
                        "-m",
                        "cronfleet_devcluster.agent",
                        "--kubeconfig",
                        str(agent_kubeconfig),
                        "--node-name",
                        NODE_NAME,
                        "--state-dir",
                        str(self.directory / "agent"),
                        "--api-port",
                        str(self.api_port),
                        "--ready-file",
                        str(ready_file),
                        *agent_endpoint_arguments(pki),
                    ],
                )
                self._wait_file("node-agent", ready_file, deadline)
        except kubelet_node.NodeError as error:
            self.stop()
            raise ControlPlaneError(str(error)) from error
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - started

    def stop(self, grace: float = 10.0) -> None:
        """Stop every process this control plane started, newest first."""
        if self.node == "kubelet" and self.processes:
            # Its containers are not its children, and it leaves mounts behind.
            kubelet_node.KubeletNode(self, NODE_NAME).stop(grace)
        for name in reversed(list(self.processes)):
            _terminate_group(self.processes[name], grace)
        self.processes.clear()
        self._write_state()

    def stop_component(self, name: str, grace: float = 10.0) -> None:
        """Stop one part (tests stop kube-controller-manager to miss fire times)."""
        pid = self.processes.pop(name, None)
        if pid is not None:
            _terminate_group(pid, grace)
            self._write_state()

    def start_component(self, name: str) -> None:
        """Start a part stopped by `stop_component` again, as it was first started."""
        if name in self.processes:
            return
        argv, env = self.commands[name]
        self._spawn(name, argv, env)

    # -- persistence for the detached `make cluster` ----------------------------

    def _write_state(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(
            json.dumps(
                {"processes": self.processes, "apiPort": self.api_port, "node": self.node},
                indent=2,
            )
        )

    @classmethod
    def from_directory(cls, directory: Path) -> ControlPlane:
        plane = cls(directory=directory)
        if plane.state_file.exists():
            state = json.loads(plane.state_file.read_text())
            plane.processes = {k: int(v) for k, v in state.get("processes", {}).items()}
            plane.api_port = int(state.get("apiPort", 0))
            plane.node = str(state.get("node", plane.node))
        return plane

    def running(self) -> dict[str, bool]:
        return {name: _alive(pid) for name, pid in self.processes.items()}

    # -- helpers ----------------------------------------------------------------

    def run_process(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Run another program beside the control plane (the demo's operator); `stop` ends it."""
        old = self.processes.pop(name, None)
        if old is not None:
            _terminate_group(old, 10.0)
        self._spawn(name, argv, env)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.commands[name] = (argv, env)
        (self.directory / "logs").mkdir(parents=True, exist_ok=True)
        log = self.log(name).open("ab")
        # A session of its own, so stopping the group also stops any child
        # processes (the agent's pods) and nothing is left behind.
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.directory,
            env=env,
        )
        log.close()
        self.processes[name] = process.pid
        self._write_state()

    def _check_alive(self, name: str) -> None:
        pid = self.processes.get(name)
        if pid is None or not _alive(pid):
            tail = _tail(self.log(name))
            raise ControlPlaneError(
                f"{name} exited during start-up; last lines of its log:\n{tail}"
            )

    def _wait_http(
        self,
        name: str,
        url: str,
        deadline: float,
        token: str | None = None,
        ca: Path | None = None,
        insecure: bool = False,
    ) -> None:
        context: ssl.SSLContext | None = None
        if url.startswith("https"):
            context = ssl.create_default_context(cafile=str(ca) if ca else None)
            if insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        last_error = ""
        while time.monotonic() < deadline:
            self._check_alive(name)
            try:
                request = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(request, timeout=5, context=context) as response:
                    if response.status == 200:
                        return
            except Exception as error:  # still starting: refused, 500 while hooks run
                last_error = str(error)
            time.sleep(0.1)
        raise ControlPlaneError(
            f"{name} was not ready at {url} in time ({last_error}); "
            f"last lines of its log:\n{_tail(self.log(name))}"
        )

    def _wait_file(self, name: str, path: Path, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive(name)
            if path.exists():
                return
            time.sleep(0.1)
        raise ControlPlaneError(f"{name} did not report ready; log:\n{_tail(self.log(name))}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0): reap it if it is ours.
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return _not_zombie(pid)
    return finished == 0


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _terminate_group(pid: int, grace: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _alive(pid) and not _group_alive(pid):
                return
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Only zombies left in the group count as gone.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
