"""The kstatus helper module (hack/kstatus) stays in step with the control plane."""

from __future__ import annotations

import re

from cronfleet_devcluster.binaries import (
    KSTATUS_MODULE,
    KUBERNETES_VERSION,
    cached_kstatus,
    kstatus_cli_utils_version,
)


def required(module: str) -> str:
    for line in (KSTATUS_MODULE / "go.mod").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == module:
            return fields[1]
    raise AssertionError(f"hack/kstatus/go.mod does not require {module}")


def test_api_machinery_matches_the_control_plane() -> None:
    # kstatus reads objects with k8s.io/apimachinery; the one of the
    # Kubernetes release the tests run keeps the helper's view of them the same.
    _, minor, patch = KUBERNETES_VERSION.split(".")
    assert required("k8s.io/apimachinery") == f"v0.{minor}.{patch}"


def test_cache_key_names_the_cli_utils_release() -> None:
    version = kstatus_cli_utils_version()
    assert re.fullmatch(r"v\d+\.\d+\.\d+", version)
    assert cached_kstatus().parent.name.startswith(f"kstatus-{version}-")
