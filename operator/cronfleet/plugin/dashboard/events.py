"""The events of one Schedule, read with the user's credentials."""

from __future__ import annotations

from typing import Any, cast

import kubernetes.client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from cronfleet.plugin.api import api_error, unreachable
from cronfleet.plugin.kubeconfig import PluginError, Session

KIND = "Schedule"


def schedule_events(session: Session, namespace: str, name: str) -> list[dict[str, Any]]:
    """The core/v1 events about the Schedule, as plain dicts (the API's own field names)."""
    api = kubernetes.client.CoreV1Api(session.api_client)
    selector = f"involvedObject.kind={KIND},involvedObject.name={name}"
    try:
        listed = api.list_namespaced_event(namespace, field_selector=selector)
    except ApiException as error:
        raise api_error(error, f'events of schedule "{name}" in namespace "{namespace}"') from error
    except HTTPError as error:
        raise unreachable(error, session) from error
    return [
        cast(dict[str, Any], session.api_client.sanitize_for_serialization(event))  # type: ignore[no-untyped-call]
        for event in listed.items or []
    ]


__all__ = ["PluginError", "schedule_events"]
