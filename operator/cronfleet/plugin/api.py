"""Reads of Schedules with the user's credentials, and API errors as sentences."""

from __future__ import annotations

import json
from typing import Any, cast

import kubernetes.client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from cronfleet.models import GROUP, PLURAL, VERSION
from cronfleet.plugin.kubeconfig import PluginError, Session

FIELD_MANAGER = "kubectl-cronfleet"


def server_message(error: ApiException) -> str:
    """The API server's own message (the Status object's), else the HTTP reason."""
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return f"{error.status} {error.reason or ''}".strip()


def api_error(error: ApiException, what: str) -> PluginError:
    """``forbidden: …`` on 403, ``not found: …`` on 404, the server's words otherwise."""
    message = server_message(error)
    if error.status == 403:
        return PluginError(f"forbidden: {message}")
    if error.status == 404:
        return PluginError(f"not found: {what} ({message})")
    if error.status == 401:
        return PluginError(
            f"unauthorized: the credentials of the kubeconfig were refused ({message})"
        )
    return PluginError(f"{what}: {message}")


def unreachable(error: Exception, session: Session) -> PluginError:
    host = session.api_client.configuration.host
    return PluginError(f"cannot reach the API server at {host}: {error}")


def custom_objects(session: Session) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(session.api_client)


def get_schedule(session: Session, namespace: str, name: str) -> dict[str, Any]:
    what = f'schedule "{name}" in namespace "{namespace}"'
    try:
        found = custom_objects(session).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
    except ApiException as error:
        raise api_error(error, what) from error
    except HTTPError as error:
        raise unreachable(error, session) from error
    return cast(dict[str, Any], found)


def list_schedules(session: Session, namespace: str | None) -> list[dict[str, Any]]:
    """The Schedules of ``namespace``, or of every namespace when it is None."""
    api = custom_objects(session)
    where = f'namespace "{namespace}"' if namespace else "all namespaces"
    try:
        if namespace is None:
            listed = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        else:
            listed = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    except ApiException as error:
        raise api_error(error, f"schedules in {where}") from error
    except HTTPError as error:
        raise unreachable(error, session) from error
    items: list[dict[str, Any]] = cast(dict[str, Any], listed).get("items") or []
    return sorted(items, key=lambda s: (s["metadata"].get("namespace", ""), s["metadata"]["name"]))


__all__ = [
    "FIELD_MANAGER",
    "api_error",
    "custom_objects",
    "get_schedule",
    "list_schedules",
    "server_message",
    "unreachable",
]
