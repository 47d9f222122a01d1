"""The real node's session: the local control plane with ``CRONFLEET_NODE=kubelet``.

These tests run only inside the network namespace ``make e2e-node`` makes
(the real node refuses to start anywhere else), so ``make test`` does not
collect them: without ``CRONFLEET_NODE=kubelet`` this directory is ignored.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cronfleet_devcluster.binaries import ensure_binaries
from cronfleet_devcluster.controlplane import ControlPlane
from cronfleet_devcluster.kube import Kube
from cronfleet_devcluster.testing import namespace_for_test

collect_ignore_glob = [] if os.environ.get("CRONFLEET_NODE") == "kubelet" else ["test_*.py"]

RESTRICTED = "restricted"


def pytest_configure(config: pytest.Config) -> None:
    # A CI time-out sends SIGTERM: stop the node and control plane on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)


@dataclass
class RealNode:
    plane: ControlPlane
    kube: Kube
    start_seconds: float


@pytest.fixture(scope="session")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    plane = ControlPlane(directory=tmp_path_factory.mktemp("cluster"), binaries=ensure_binaries())
    assert plane.node == "kubelet", "the e2e tests run on the real node: CRONFLEET_NODE=kubelet"
    seconds = plane.start()
    steps = ", ".join(f"{name} {value:.1f}s" for name, value in plane.node_timings.items())
    print(f"\ncontrol plane and real node Ready in {seconds:.1f}s ({steps})")
    try:
        yield RealNode(plane, Kube.from_kubeconfig(plane.kubeconfig), seconds)
    finally:
        started = time.monotonic()
        plane.stop()
        print(f"\ncontrol plane and real node stopped in {time.monotonic() - started:.1f}s")


@pytest.fixture
def restricted_namespace(real_node: RealNode, request: pytest.FixtureRequest) -> Iterator[str]:
    labels = {"pod-security.kubernetes.io/enforce": RESTRICTED}
    with namespace_for_test(real_node.kube, request.node.name, labels) as name:
        yield name
