"""``make demo``: the local control plane, the CRD, the operator and the examples."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cronfleet_devcluster.binaries import cached_binaries, ensure_binaries
from cronfleet_devcluster.controlplane import ControlPlane
from cronfleet_devcluster.kube import SCHEDULES, Kube

REPO_ROOT = Path(__file__).resolve().parents[2]


def kubectl(plane: ControlPlane, *args: str) -> str:
    command = [str(cached_binaries().kubectl), "--kubeconfig", str(plane.kubeconfig), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def run_demo(directory: Path) -> int:
    started = time.monotonic()
    ensure_binaries()
    plane = ControlPlane.from_directory(directory)
    if plane.processes and all(
        alive for name, alive in plane.running().items() if name != "operator"
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

    print(kubectl(plane, "apply", "-f", str(REPO_ROOT / "examples")), end="")
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
