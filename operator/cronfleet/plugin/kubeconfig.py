"""The user's kubeconfig, loaded the way kubectl loads it.

Everything goes through the official client's loader: contexts, the
context's namespace, several files in ``KUBECONFIG``, exec credential
plugins (EKS, GKE, AKS) and OIDC auth providers. Inside a pod, where there
is no kubeconfig, the pod's ServiceAccount is used instead, as kubectl does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import kubernetes.client
import kubernetes.config
import yaml
from kubernetes.config.config_exception import ConfigException

DEFAULT_KUBECONFIG = "~/.kube/config"
# Where the in-cluster namespace is, as kubectl reads it.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class PluginError(Exception):
    """A failure to tell the user on stderr, with the exit code to end with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Session:
    api_client: kubernetes.client.ApiClient
    namespace: str
    context: str | None


def kubeconfig_paths(kubeconfig: str | None, environ: dict[str, str] | None = None) -> list[str]:
    """The files kubectl reads: --kubeconfig, else each path in KUBECONFIG, else ~/.kube/config."""
    env = os.environ if environ is None else environ
    if kubeconfig:
        return [os.path.expanduser(kubeconfig)]
    listed = [path for path in env.get("KUBECONFIG", "").split(os.pathsep) if path]
    if listed:
        return [os.path.expanduser(path) for path in listed]
    return [os.path.expanduser(DEFAULT_KUBECONFIG)]


def _existing(paths: list[str]) -> list[str]:
    return [path for path in paths if os.path.exists(path)]


def context_namespace(active: dict[str, object]) -> str:
    """The namespace of a kubeconfig context entry, "default" when it names none."""
    context = active.get("context")
    if isinstance(context, dict):
        namespace = context.get("namespace")
        if isinstance(namespace, str) and namespace:
            return namespace
    return "default"


def first_current_context(files: list[str]) -> str | None:
    """The current-context kubectl picks from several files: the first file's that sets one.

    The client's merger lets the last file win instead; every other key
    (clusters, users, contexts: first file wins) it merges as kubectl does.
    """
    for path in files:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle)
        current = loaded.get("current-context") if isinstance(loaded, dict) else None
        if isinstance(current, str) and current:
            return current
    return None


class _LoadErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _credential_errors() -> Iterator[list[str]]:
    """What the client's loader logs instead of raising while it gets credentials.

    A failing exec credential plugin is only logged there, and the client
    then goes on without credentials, so every request would be refused as
    system:anonymous. kubectl stops with the plugin's error; so does this.
    """
    handler = _LoadErrors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.messages
    finally:
        root.removeHandler(handler)


def _from_kubeconfig(
    files: list[str], context: str | None
) -> tuple[kubernetes.client.ApiClient, str, str | None]:
    # One file is passed as itself; several as the merged form the client's
    # loader understands (the path list, as in KUBECONFIG).
    config_file = os.pathsep.join(files)
    if context is None and len(files) > 1:
        context = first_current_context(files)
    try:
        contexts, active = kubernetes.config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=config_file
        )
        if context is not None:
            named = [entry for entry in contexts if entry.get("name") == context]
            if not named:
                known = ", ".join(sorted(str(entry.get("name")) for entry in contexts)) or "none"
                raise PluginError(
                    f"context {context!r} is not in the kubeconfig ({config_file}); "
                    f"contexts there: {known}"
                )
            active = named[0]
        with _credential_errors() as failures:
            client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=config_file, context=context, persist_config=False
            )
        if failures:
            user = str((active.get("context") or {}).get("user") or "")
            raise PluginError(
                f"cannot get credentials for user {user!r} of the kubeconfig ({config_file}): "
                + "; ".join(failures)
            )
    except ConfigException as error:
        raise PluginError(f"cannot load the kubeconfig ({config_file}): {error}") from error
    return client, context_namespace(active), str(active.get("name") or "") or None


def _in_cluster() -> tuple[kubernetes.client.ApiClient, str]:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
        client_configuration=configuration
    )
    namespace = "default"
    if SERVICE_ACCOUNT_NAMESPACE.exists():
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or namespace
    return kubernetes.client.ApiClient(configuration), namespace


def load_session(
    kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
) -> Session:
    """The API client, namespace and context a kubectl command with these flags would use."""
    files = _existing(kubeconfig_paths(kubeconfig))
    if kubeconfig and not files:
        raise PluginError(f"--kubeconfig {kubeconfig!r}: no such file")
    if files:
        client, context_ns, context_name = _from_kubeconfig(files, context)
        return Session(client, namespace or context_ns, context_name)
    if context is not None:
        raise PluginError(f"--context {context!r}: no kubeconfig found ({DEFAULT_KUBECONFIG})")
    try:
        client, pod_ns = _in_cluster()
    except ConfigException as error:
        raise PluginError(
            "no kubeconfig found: set KUBECONFIG or pass --kubeconfig "
            f"(looked at {', '.join(kubeconfig_paths(None))}; not running in a pod either)"
        ) from error
    return Session(client, namespace or pod_ns, None)


__all__ = ["PluginError", "Session", "kubeconfig_paths", "load_session"]
