"""``cronfleet-devcluster``: build, start, stop and inspect the local control plane."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from cronfleet_devcluster.binaries import (
    ETCD_VERSION,
    HELM_VERSION,
    KUBERNETES_VERSION,
    cached_binaries,
    ensure_binaries,
    ensure_cron_oracle,
    ensure_helm,
    ensure_kstatus,
    ensure_node_binaries,
    ensure_node_probe,
    ensure_promtool,
    kstatus_cli_utils_version,
    prometheus_release,
)
from cronfleet_devcluster.controlplane import ControlPlane, ControlPlaneError

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_directory() -> Path:
    return Path(os.environ.get("CRONFLEET_CLUSTER_DIR", REPO_ROOT / ".cluster"))


def command_build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    binaries = ensure_binaries()
    helm = ensure_helm()
    promtool = ensure_promtool()
    kstatus = ensure_kstatus()
    # Built here so that the unit suite's cron parity test never fetches modules.
    oracle = ensure_cron_oracle()
    # The real node's programs only on request: a cold kubelet build takes minutes.
    node_programs = (
        (*ensure_node_binaries().all(), ensure_node_probe()) if args.with_kubelet else ()
    )
    print(
        f"Kubernetes {KUBERNETES_VERSION}, etcd {ETCD_VERSION}, Helm {HELM_VERSION}, "
        f"promtool {prometheus_release()} and kstatus (cli-utils {kstatus_cli_utils_version()}) "
        f"ready in {time.monotonic() - started:.1f}s:"
    )
    for path in (*binaries.all(), helm, promtool, kstatus, oracle, *node_programs):
        print(f"  {path}")
    return 0


def command_up(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    existing = ControlPlane.from_directory(directory)
    if existing.processes and any(existing.running().values()):
        print(
            f"a local control plane already runs from {directory}; "
            f"`cronfleet-devcluster down` stops it",
            file=sys.stderr,
        )
        return 1
    ensure_binaries()
    plane = ControlPlane(directory=directory, binaries=cached_binaries())
    try:
        seconds = plane.start()
    except ControlPlaneError as error:
        print(f"the local control plane did not start: {error}", file=sys.stderr)
        return 1
    print(f"local control plane ready in {seconds:.1f}s (API server {plane.server})")
    print(f"export KUBECONFIG={plane.kubeconfig}")
    return 0


def command_down(args: argparse.Namespace) -> int:
    plane = ControlPlane.from_directory(args.dir)
    if not plane.processes:
        print(f"no local control plane runs from {args.dir}")
        return 0
    plane.stop()
    print("local control plane stopped")
    return 0


def command_status(args: argparse.Namespace) -> int:
    plane = ControlPlane.from_directory(args.dir)
    states = plane.running()
    if not states:
        print(f"no local control plane runs from {args.dir}")
        return 1
    for name, alive in states.items():
        print(f"{name:<26} {'running' if alive else 'stopped'} (pid {plane.processes[name]})")
    print(f"KUBECONFIG={plane.kubeconfig}")
    return 0 if all(states.values()) else 1


def command_demo(args: argparse.Namespace) -> int:
    from cronfleet_devcluster.demo import run_demo  # noqa: PLC0415

    return run_demo(args.dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cronfleet-devcluster", description=__doc__)
    parser.add_argument(
        "--dir",
        type=Path,
        default=default_directory(),
        help="state directory (default: $CRONFLEET_CLUSTER_DIR or ./.cluster)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build",
        help="build the control-plane programs, Helm, promtool and kstatus, "
        "or reuse the cached ones",
    )
    build.add_argument(
        "--with-kubelet",
        action="store_true",
        help="also the real node's kubelet, kube-scheduler and pause program "
        "(CRONFLEET_NODE=kubelet)",
    )
    commands.add_parser(
        "up",
        help="start etcd, kube-apiserver, kube-controller-manager "
        "and the node agent in the background",
    )
    commands.add_parser("down", help="stop them")
    commands.add_parser("status", help="show which parts run")
    commands.add_parser(
        "demo", help="start everything, install the CRD, run the operator, apply examples/"
    )
    args = parser.parse_args(argv)
    handler = {
        "build": command_build,
        "up": command_up,
        "down": command_down,
        "status": command_status,
        "demo": command_demo,
    }[args.command]
    try:
        sys.exit(handler(args))
    except ControlPlaneError as error:  # a bad CRONFLEET_NODE, say: a sentence, no traceback
        print(f"cronfleet-devcluster: {error}", file=sys.stderr)
        sys.exit(1)
