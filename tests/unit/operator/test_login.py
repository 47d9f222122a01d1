"""In a pod the operator reaches the API server as client-go does: by the injected address."""

from __future__ import annotations

from pathlib import Path

import kopf

from cronfleet.login import in_cluster_login, in_cluster_server


def test_the_server_comes_from_the_injected_variables() -> None:
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_server(environ) == "https://10.96.0.1:443"
    ipv6 = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert in_cluster_server(ipv6) == "https://[fd00::1]:6443"
    assert in_cluster_server({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}) is None


def test_a_pods_service_account_logs_in_without_cluster_dns(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t0ken\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "namespace").write_text("cronfleet-system")
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    info = in_cluster_login(kopf.OperatorSettings(), environ, tmp_path)
    assert info is not None
    assert (info.server, info.token, info.default_namespace) == (
        "https://10.96.0.1:443",
        "t0ken",
        "cronfleet-system",
    )
    assert info.ca_path == str(tmp_path / "ca.crt")
    # Not in a pod: no token, or no injected address, is the kubeconfig's turn.
    assert in_cluster_login(kopf.OperatorSettings(), {}, tmp_path) is None
    assert in_cluster_login(kopf.OperatorSettings(), environ, tmp_path / "missing") is None
