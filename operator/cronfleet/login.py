"""How the operator logs in to the API server.

In a pod, kopf's own service-account login names the server
``https://kubernetes.default.svc``, which needs cluster DNS. client-go, like
every Kubernetes controller, uses the ``KUBERNETES_SERVICE_HOST`` and
``KUBERNETES_SERVICE_PORT`` the kubelet injects into every pod instead, which
works without DNS (and with a pod that has no nameserver). Outside a pod the
kubeconfig is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import kopf

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster_server(environ: Mapping[str, str]) -> str | None:
    """The API server's URL from the variables the kubelet injects, as client-go builds it."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "").strip()
    port = environ.get("KUBERNETES_SERVICE_PORT", "").strip()
    if not host or not port:
        return None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"https://{host}:{port}"


def in_cluster_login(
    settings: kopf.OperatorSettings,
    environ: Mapping[str, str],
    account: Path = SERVICE_ACCOUNT_DIR,
) -> kopf.ConnectionInfo | None:
    """The pod's ServiceAccount credentials for the injected server; None outside a pod."""
    token_path = account / "token"
    server = in_cluster_server(environ)
    if server is None or not token_path.exists():
        return None
    namespace_path = account / "namespace"
    ca_path = account / "ca.crt"
    return kopf.ConnectionInfo(
        server=server,
        # Read at every login: kopf logs in again on a 401, so a rotated token is used.
        token=token_path.read_text().strip() or None,
        ca_path=str(ca_path) if ca_path.exists() else None,
        default_namespace=(
            namespace_path.read_text().strip() or None if namespace_path.exists() else None
        ),
        trust_env=settings.networking.trust_env,
    )
