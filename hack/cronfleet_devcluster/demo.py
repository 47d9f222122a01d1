"""``make demo``: the local control plane, the CRD, the operator and the examples."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from cronfleet_devcluster.binaries import cached_binaries, ensure_binaries
from cronfleet_devcluster.controlplane import ControlPlane, free_port
from cronfleet_devcluster.endpoints import HOST, localise
from cronfleet_devcluster.kube import SCHEDULES, Kube, Object

REPO_ROOT = Path(__file__).resolve().parents[2]


def kubectl(plane: ControlPlane, *args: str, input: str | None = None) -> str:
    command = [str(cached_binaries().kubectl), "--kubeconfig", str(plane.kubeconfig), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False, input=input)
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def examples() -> list[Object]:
    """Every document of examples/, in the order `kubectl apply -f examples` takes them."""
    documents: list[Object] = []
    for path in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def serve_endpoints(plane: ControlPlane) -> list[Object]:
    """Serve what the examples' http Schedules call on 127.0.0.1, and return the
    examples pointed at it: no run of the demo looks up or calls another host."""
    port = free_port()
    documents, paths = localise(examples(), port)
    argv = [sys.executable, "-m", "cronfleet_devcluster.endpoints", "--port", str(port), *paths]
    plane.run_process("endpoints", argv, dict(os.environ))
    deadline = time.monotonic() + 10
    while not _listening(port):
        if time.monotonic() > deadline:
            raise SystemExit(f"the example endpoints did not start: {plane.log('endpoints')}")
        time.sleep(0.1)
    print(f"example endpoints on http://{HOST}:{port} (log: {plane.log('endpoints')})")
    return documents


def _listening(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


def run_demo(directory: Path) -> int:
    started = time.monotonic()
    ensure_binaries()
    plane = ControlPlane.from_directory(directory)
    # The demo's own processes are started again below; the rest must run.
    if plane.processes and all(
        alive for name, alive in plane.running().items() if name not in ("operator", "endpoints")
    ):
        print(f"reusing the local control plane in {directory}")
    else:
        plane.stop()
        plane = ControlPlane(directory=directory, binaries=cached_binaries())
        print(f"local control plane ready in {plane.start():.1f}s")

    print(kubectl(plane, "apply", "--server-side", "-f", str(REPO_ROOT / "crds")), end="")
    kubectl(plane, "wait", "--for=condition=Established", "crd/schedules.cronfleet.io")

    operator = str(Path(sys.executable).parent / "cronfleet-operator")
    env = dict(os.environ, KUBECONFIG=str(plane.kubeconfig))
    plane.run_process("operator", [operator, "--log-format", "plain"], env)
    print(f"operator running (log: {plane.log('operator')})")

    documents = serve_endpoints(plane)
    manifests = yaml.safe_dump_all(documents, sort_keys=False)
    print(kubectl(plane, "apply", "-f", "-", input=manifests), end="")
    kube = Kube.from_kubeconfig(plane.kubeconfig)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        items = kube.items(SCHEDULES)
        if items and all((item.get("status") or {}).get("phase") for item in items):
            break
        time.sleep(0.5)
    print()
    print(kubectl(plane, "get", "schedules", "-A", "-o", "wide"), end="")
    print()
    print(f"ready in {time.monotonic() - started:.1f}s. Look around with:")
    print(f"  export KUBECONFIG={plane.kubeconfig}")
    print(f"  alias kubectl={cached_binaries().kubectl}")
    print("  kubectl describe schedule heartbeat   # runs every minute")
    print("  kubectl get cronjobs,jobs,pods -A")
    print("Stop everything with: make cluster-down")
    return 0
