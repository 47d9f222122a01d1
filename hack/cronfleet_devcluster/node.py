"""A real node for the local control plane: containerd, runc, CNI, the kubelet.

With it come kube-scheduler and kube-controller-manager's node lifecycle
controller, which the node agent does without: it binds pods itself and
registers no taints, while a kubelet waits for a scheduler and registers its
Node with the not-ready taint that only that controller takes off.

``CRONFLEET_NODE=kubelet`` puts this node where the node agent would be. It
runs only inside a network namespace of its own (``cronfleet_devcluster.netns``),
because there its choices are safe and simple:

- the API server listens on every address of the namespace at port 443, and
  the ``kubernetes`` Service's ClusterIP is an address of the namespace's
  loopback, so a pod's in-cluster configuration (``KUBERNETES_SERVICE_HOST``
  and ``_PORT``, which the kubelet sets) reaches it without kube-proxy;
- pods get addresses from a CNI bridge whose gateway is the node's address,
  with no masquerading and nowhere to be routed beyond it;
- containerd sends every registry request to a loopback port where nothing
  listens, so an image that was not imported fails with ``ErrImagePull``
  at once and no pull leaves the machine.

No registry is reachable, so images are imported: the pause image is built
here from ``hack/nodeprobe`` (a static program), and image archives (``make
images``) are imported as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cronfleet_devcluster.binaries import cache_root, ensure_node_binaries, ensure_node_probe
from cronfleet_devcluster.pki import issue_certificate

if TYPE_CHECKING:
    from cronfleet_devcluster.controlplane import ControlPlane

POD_CIDR = "10.88.0.0/16"
BRIDGE = "cni0"
# The node's own address: the bridge's, so pods reach the kubelet and the
# API server on it.
NODE_ADDRESS = "10.88.0.1"
# The ClusterIP of the `kubernetes` Service (the first address of the
# control plane's service CIDR), served directly on loopback.
API_SERVICE_ADDRESS = "10.96.0.1"
API_SERVICE_PORT = 443
KUBELET_PORT = 10250
# What a real node needs of kube-controller-manager beyond what the node agent
# does: the kubelet registers its Node with the not-ready taint, and only
# the node lifecycle controller takes it off once the Node is Ready.
CONTROLLERS = ("node-lifecycle-controller",)
CNI_PLUGIN_DIR = Path("/usr/lib/cni")
# An unused loopback port (discard) takes every registry request: refused.
UNREACHABLE_REGISTRY = "http://127.0.0.1:9"
K8S_NAMESPACE = "k8s.io"
PAUSE_IMAGE = "cronfleet.local/pause:1"
PROBE_IMAGE = "cronfleet.local/nodeprobe:1"
IMAGE_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
REQUIRED_PROGRAMS = {
    "containerd": "containerd",
    "ctr": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "runc": "runc",
    "ip": "iproute2",
}


class NodeError(RuntimeError):
    """The real node could not start; the message says which part and why."""


def is_image_archive(path: Path) -> bool:
    """A docker-archive or OCI layout tar, not some other tar (a root filesystem, say)."""
    try:
        with tarfile.open(path) as archive:
            return any(
                member.name.lstrip("./") in ("manifest.json", "index.json") for member in archive
            )
    except (OSError, tarfile.TarError):
        return False


def default_image_archives() -> tuple[Path, ...]:
    """The image archives ``make images`` leaves under the cache's ``images/``.

    That directory also keeps the base image's root filesystem, which is no
    image archive and is left out.
    """
    directory = cache_root() / "images"
    if not directory.is_dir():
        return ()
    return tuple(
        sorted(
            path
            for path in directory.iterdir()
            if path.is_file()
            and path.name.endswith(IMAGE_ARCHIVE_SUFFIXES)
            and ".partial." not in path.name
            and is_image_archive(path)
        )
    )


def network_interfaces() -> list[str]:
    """The interfaces of this process's network namespace."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return [line.split(":", 1)[0].strip() for line in lines]


def require_isolated_network() -> None:
    """Refuse to run unless every interface is loopback or the node's own."""
    outward = [
        name
        for name in network_interfaces()
        if name not in ("lo", BRIDGE) and not name.startswith("veth")
    ]
    if outward:
        raise NodeError(
            "the real node (CRONFLEET_NODE=kubelet) runs only in a network namespace of "
            f"its own, but this one has the interfaces {', '.join(sorted(outward))}; run "
            "the command under `python -m cronfleet_devcluster.netns --` (as `make e2e-node` does)"
        )


def require_programs() -> None:
    missing = sorted(
        {package for program, package in REQUIRED_PROGRAMS.items() if not shutil.which(program)}
    )
    if not (CNI_PLUGIN_DIR / "bridge").exists():
        missing.append("containernetworking-plugins")
    if missing:
        raise NodeError(
            "the real node needs the Debian packages "
            f"{', '.join(missing)}: apt-get install -y --no-install-recommends "
            f"{' '.join(missing)}"
        )


def _go_architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _tar_member(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    archive.addfile(info, io.BytesIO(data))


def write_image_archive(
    program: Path, archive: Path, tags: Iterable[str], entrypoint: list[str]
) -> None:
    """Pack one static program as a one-layer image, in the docker-archive format ``ctr`` imports.

    Every timestamp is zero, so the same program always makes the same image.
    """
    layer_buffer = io.BytesIO()
    with tarfile.open(fileobj=layer_buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        _tar_member(layer, program.name, program.read_bytes(), 0o755)
    layer_bytes = layer_buffer.getvalue()
    layer_digest = hashlib.sha256(layer_bytes).hexdigest()
    config = {
        "architecture": _go_architecture(),
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": entrypoint, "Env": ["PATH=/"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    layer_name = f"{layer_digest}/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": list(tags), "Layers": [layer_name]}]
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="w", format=tarfile.PAX_FORMAT) as image:
        _tar_member(image, config_name, config_bytes)
        _tar_member(image, layer_name, layer_bytes)
        _tar_member(image, "manifest.json", json.dumps(manifest).encode())


def containerd_config(directory: Path, cni_config_dir: Path, hosts_dir: Path) -> str:
    socket = directory / "containerd.sock"
    return f"""version = 2
root = "{directory / "root"}"
state = "{directory / "state"}"
oom_score = 0

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # This machine withholds CAP_SYS_RESOURCE: a sandbox asking for a lower
  # OOM score than containerd's fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_PLUGIN_DIR}"
    conf_dir = "{cni_config_dir}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{hosts_dir}"
"""


def registry_hosts_config() -> str:
    """``hosts.toml`` that sends a registry's every request to a port where nothing listens."""
    return (
        f'server = "{UNREACHABLE_REGISTRY}"\n\n'
        f'[host."{UNREACHABLE_REGISTRY}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )


# `_default` applies to every registry without a directory of its own
# (containerd 1.6.20 honours it: a pull of any name goes to the port above).
MIRRORED_REGISTRIES = ("_default",)


def cni_config(ipam_dir: Path) -> str:
    # No ipMasq: pod traffic is never rewritten to leave by the node's address.
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "cronfleet",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_ADDRESS}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(ipam_dir),
                    },
                }
            ],
        },
        indent=2,
    )


def kubelet_config(
    containerd_socket: Path, root: Path, client_ca: Path, pki: Path
) -> dict[str, object]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{containerd_socket}",
        "address": NODE_ADDRESS,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        # What this machine allows: no systemd, cgroupfs, and no QoS or
        # allocatable cgroups the kubelet could not set up without privileges it lacks.
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        # No nameserver in pods: nothing to resolve, nowhere to reach.
        "resolvConf": "",
        "podLogsDir": str(root / "pod-logs"),
        "volumePluginDir": str(root / "volume-plugins"),
        "serializeImagePulls": False,
        # A test node must not evict or garbage-collect the images it cannot pull again.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "0%",
            "nodefs.available": "0%",
            "imagefs.available": "0%",
            "nodefs.inodesFree": "0%",
        },
        "podCIDR": POD_CIDR,
        "maxPods": 250,
        "registerNode": True,
        "staticPodPath": "",
    }


def write_node_pki(pki: Path, node_name: str) -> None:
    """Client certificates of the kubelet, the scheduler and the API server (to the kubelet).

    And the kubelet's serving certificate.
    """
    # system:masters as for the node agent: the API server authorizes with
    # RBAC only (no Node authorizer), which grants system:nodes nothing.
    issue_certificate(
        pki,
        "kubelet-client",
        f"/O=system:nodes/O=system:masters/CN=system:node:{node_name}",
        "extendedKeyUsage=clientAuth\n",
    )
    issue_certificate(
        pki,
        "kubelet-serving",
        f"/CN={node_name}",
        f"subjectAltName=IP:{NODE_ADDRESS},DNS:{node_name}\nextendedKeyUsage=serverAuth\n",
    )
    issue_certificate(
        pki,
        "kube-scheduler",
        "/O=system:masters/CN=system:kube-scheduler",
        "extendedKeyUsage=clientAuth\n",
    )
    issue_certificate(
        pki,
        "apiserver-kubelet-client",
        "/O=system:masters/CN=kube-apiserver-kubelet-client",
        "extendedKeyUsage=clientAuth\n",
    )


def api_server_arguments(pki: Path) -> list[str]:
    """What the API server needs beside a real node: every address, port 443, kubelet access."""
    return [
        "--bind-address",
        "0.0.0.0",
        "--kubelet-client-certificate",
        str(pki / "apiserver-kubelet-client.crt"),
        "--kubelet-client-key",
        str(pki / "apiserver-kubelet-client.key"),
        "--kubelet-preferred-address-types",
        "InternalIP",
    ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _mount_points_under(directory: Path) -> list[str]:
    prefix = str(directory.resolve()) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    return points


def _descendants(roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    pending = list(roots)
    while pending:
        pid = pending.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


@dataclass
class KubeletNode:
    """containerd and the kubelet of one control plane, with their state under its directory."""

    plane: ControlPlane
    node_name: str
    image_archives: tuple[Path, ...] = ()

    @property
    def directory(self) -> Path:
        return self.plane.directory / "node"

    @property
    def containerd_socket(self) -> Path:
        return self.directory / "containerd" / "containerd.sock"

    # -- start ------------------------------------------------------------------

    def start(self, deadline: float) -> dict[str, float]:
        """Start containerd and the kubelet; return how long each step took, in seconds."""
        require_isolated_network()
        require_programs()
        timings: dict[str, float] = {}
        mark = time.monotonic()
        programs = ensure_node_binaries()
        probe = ensure_node_probe()
        timings["build"] = time.monotonic() - mark
        self.clean_up()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self._set_up_network()
        mark = time.monotonic()
        self._start_containerd(deadline)
        timings["containerd"] = time.monotonic() - mark
        mark = time.monotonic()
        archive = self.directory / "images" / "nodeprobe.tar"
        write_image_archive(probe, archive, (PAUSE_IMAGE, PROBE_IMAGE), [f"/{probe.name}"])
        for path in (archive, *self.image_archives):
            self.import_image(path)
        timings["images"] = time.monotonic() - mark
        mark = time.monotonic()
        self._start_kubelet(programs.kubelet, deadline)
        timings["kubelet"] = time.monotonic() - mark
        mark = time.monotonic()
        self._start_scheduler(programs.kube_scheduler, deadline)
        timings["kube-scheduler"] = time.monotonic() - mark
        return timings

    def _set_up_network(self) -> None:
        # The bridge exists before the first pod, so the kubelet has its node
        # address to serve on; the bridge plugin adopts it as it is.
        commands = [
            ["ip", "link", "set", "lo", "up"],
            ["ip", "address", "replace", f"{API_SERVICE_ADDRESS}/32", "dev", "lo"],
        ]
        if BRIDGE not in network_interfaces():
            commands.append(["ip", "link", "add", BRIDGE, "type", "bridge"])
        commands += [
            ["ip", "address", "replace", f"{NODE_ADDRESS}/{POD_CIDR.split('/')[1]}", "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
        ]
        for command in commands:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise NodeError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")

    def _start_containerd(self, deadline: float) -> None:
        containerd_dir = self.directory / "containerd"
        cni_config_dir = self.directory / "cni" / "net.d"
        hosts_dir = containerd_dir / "hosts"
        for path in (containerd_dir, cni_config_dir, hosts_dir):
            path.mkdir(parents=True, exist_ok=True)
        for registry in MIRRORED_REGISTRIES:
            (hosts_dir / registry).mkdir(exist_ok=True)
            (hosts_dir / registry / "hosts.toml").write_text(registry_hosts_config())
        (cni_config_dir / "10-cronfleet.conflist").write_text(
            cni_config(self.directory / "cni" / "ipam")
        )
        config = containerd_dir / "config.toml"
        config.write_text(containerd_config(containerd_dir, cni_config_dir, hosts_dir))
        self.plane.run_process("containerd", ["containerd", "--config", str(config)])
        last = ""
        while time.monotonic() < deadline:
            self._check_alive("containerd")
            if self.containerd_socket.exists():
                result = self._ctr("version")
                if result.returncode == 0:
                    return
                last = result.stderr.strip()
            time.sleep(0.1)
        raise NodeError(
            f"containerd did not answer in time ({last}); log:\n{self._tail('containerd')}"
        )

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.containerd_socket), "--namespace", K8S_NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def import_image(self, archive: Path) -> None:
        """Import an image archive (docker-archive or OCI) where the kubelet's pods find it."""
        result = self._ctr("images", "import", str(archive))
        if result.returncode != 0:
            raise NodeError(f"containerd did not import {archive}: {result.stderr.strip()}")

    def images(self) -> list[str]:
        result = self._ctr("images", "list", "--quiet")
        return result.stdout.split()

    def _start_kubelet(self, kubelet: Path, deadline: float) -> None:
        pki = self.plane.directory / "pki"
        root = self.directory / "kubelet"
        root.mkdir(parents=True, exist_ok=True)
        kubeconfig = self._write_kubeconfig("kubelet", "kubelet-client")
        config = self.directory / "kubelet.yaml"
        config.write_text(
            json.dumps(kubelet_config(self.containerd_socket, root, pki / "ca.crt", pki), indent=2)
        )
        self.plane.run_process(
            "kubelet",
            [
                str(kubelet),
                "--config",
                str(config),
                "--kubeconfig",
                str(kubeconfig),
                "--root-dir",
                str(root),
                "--hostname-override",
                self.node_name,
                "--node-ip",
                NODE_ADDRESS,
                "-v",
                "1",
            ],
        )
        self._wait_ready(deadline)

    def _write_kubeconfig(self, user: str, certificate: str) -> Path:
        pki = self.plane.directory / "pki"
        path = self.directory / f"{user}.kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "cronfleet-local",
                            "cluster": {
                                "server": self.plane.server,
                                "certificate-authority": str(pki / "ca.crt"),
                            },
                        }
                    ],
                    "users": [
                        {
                            "name": user,
                            "user": {
                                "client-certificate": str(pki / f"{certificate}.crt"),
                                "client-key": str(pki / f"{certificate}.key"),
                            },
                        }
                    ],
                    "contexts": [
                        {
                            "name": "cronfleet-local",
                            "context": {"cluster": "cronfleet-local", "user": user},
                        }
                    ],
                    "current-context": "cronfleet-local",
                },
                indent=2,
            )
        )
        return path

    def _start_scheduler(self, scheduler: Path, deadline: float) -> None:
        """The real scheduler: the node agent binds pods itself, a kubelet does not."""
        kubeconfig = self._write_kubeconfig("kube-scheduler", "kube-scheduler")
        port = free_port()
        self.plane.run_process(
            "kube-scheduler",
            [
                str(scheduler),
                "--kubeconfig",
                str(kubeconfig),
                "--authentication-kubeconfig",
                str(kubeconfig),
                "--authorization-kubeconfig",
                str(kubeconfig),
                "--leader-elect=false",
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(port),
                "-v",
                "1",
            ],
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        last = ""
        while time.monotonic() < deadline:
            self._check_alive("kube-scheduler")
            try:
                url = f"https://127.0.0.1:{port}/healthz"
                with urllib.request.urlopen(url, timeout=5, context=context) as response:
                    if response.status == 200:
                        return
            except OSError as error:  # still starting
                last = str(error)
            time.sleep(0.1)
        raise NodeError(
            f"kube-scheduler was not healthy in time ({last}); "
            f"last lines of its log:\n{self._tail('kube-scheduler')}"
        )

    def _wait_ready(self, deadline: float) -> None:
        binaries = self.plane.binaries
        assert binaries is not None, "the control plane sets its binaries before the node starts"
        last = ""
        while time.monotonic() < deadline:
            self._check_alive("kubelet")
            result = subprocess.run(
                [
                    str(binaries.kubectl),
                    "--kubeconfig",
                    str(self.plane.kubeconfig),
                    "get",
                    "node",
                    self.node_name,
                    "-o",
                    'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if result.stdout.strip() == "True":
                return
            last = (result.stdout + result.stderr).strip()
            time.sleep(0.25)
        raise NodeError(
            f"node {self.node_name} was not Ready in time ({last or 'no status'}); "
            f"last lines of the kubelet's log:\n{self._tail('kubelet')}"
        )

    def _check_alive(self, name: str) -> None:
        if not self.plane.running().get(name, False):
            raise NodeError(
                f"{name} exited during start-up; last lines of its log:\n{self._tail(name)}"
            )

    def _tail(self, name: str, lines: int = 30) -> str:
        try:
            text = self.plane.log(name).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- stop -------------------------------------------------------------------

    def stop(self, grace: float = 10.0) -> None:
        """Stop the kubelet, kill every container, stop containerd and unmount what they mounted."""
        # The kubelet first, so it does not restart what is killed below.
        self.plane.stop_component("kube-scheduler", grace)
        self.plane.stop_component("kubelet", grace)
        self.kill_containers()
        self.plane.stop_component("containerd", grace)
        self.clean_up()

    def kill_containers(self) -> None:
        """SIGKILL the shims of this node's containerd and every process they run."""
        address = str(self.containerd_socket)
        shims: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and address.encode() in argv:
                shims.add(int(entry.name))
        for pid in sorted(_descendants(shims) | shims, reverse=True):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until = time.monotonic() + 5
        while time.monotonic() < wait_until and any(Path(f"/proc/{pid}").exists() for pid in shims):
            time.sleep(0.05)

    def clean_up(self) -> None:
        """Unmount what the kubelet and containerd mounted under the node's directory."""
        if not self.directory.exists():
            return
        for point in reversed(_mount_points_under(self.directory)):
            subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
        # The unpacked images take hundreds of megabytes per run; the logs stay.
        # Only once nothing is mounted there, so no removal reaches through a mount.
        if not _mount_points_under(self.directory):
            for state in ("root", "state"):
                shutil.rmtree(self.directory / "containerd" / state, ignore_errors=True)
