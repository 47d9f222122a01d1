"""What a user's action writes to a Schedule, and the thin call that writes it.

Every action is a JSON merge patch of ``metadata.annotations`` and never of
``spec``: a Schedule kept in Git must not drift, and its owner's GitOps tool
leaves annotations it does not manage alone. The patch is sent with the
user's own credentials, so RBAC decides and the audit log names the user.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, cast

import kubernetes.client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from cronfleet.clock import to_rfc3339
from cronfleet.models import GROUP, PLURAL, VERSION
from cronfleet.pausing import PAUSE_ANNOTATION
from cronfleet.plugin.api import FIELD_MANAGER, api_error, custom_objects, unreachable
from cronfleet.plugin.kubeconfig import PluginError, Session
from cronfleet.tracking import BACKFILL_ANNOTATION, RESET_ANNOTATION, RUN_NOW_ANNOTATION

# The reason a pause records when the user gives none.
DEFAULT_PAUSE_REASON = "paused with kubectl cronfleet"


def new_token(now: datetime) -> str:
    """A token never used before: the time, readable in the status, plus randomness."""
    return f"{now.astimezone(UTC):%Y%m%dt%H%M%S}-{secrets.token_hex(3)}"


def _annotations(values: dict[str, str | None]) -> dict[str, Any]:
    return {"metadata": {"annotations": values}}


def run_now_patch(token: str) -> dict[str, Any]:
    return _annotations({RUN_NOW_ANNOTATION: token})


def pause_patch(reason: str) -> dict[str, Any]:
    return _annotations({PAUSE_ANNOTATION: reason.strip() or DEFAULT_PAUSE_REASON})


def resume_patch() -> dict[str, Any]:
    # null in a merge patch removes the key.
    return _annotations({PAUSE_ANNOTATION: None})


def reset_patch(token: str) -> dict[str, Any]:
    return _annotations({RESET_ANNOTATION: token})


def backfill_patch(start: datetime, end: datetime) -> dict[str, Any]:
    """One run per fire time in [start, end]; a new range is a new request."""
    return _annotations({BACKFILL_ANNOTATION: f"{to_rfc3339(start)}/{to_rfc3339(end)}"})


def apply_action(
    session: Session, namespace: str, name: str, patch: dict[str, Any]
) -> dict[str, Any]:
    """Send the merge patch as the user; the updated Schedule, or PluginError."""
    what = f'schedule "{name}" in namespace "{namespace}"'
    try:
        updated = custom_objects(session).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch, field_manager=FIELD_MANAGER
        )
    except ApiException as error:
        raise api_error(error, what) from error
    except HTTPError as error:
        raise unreachable(error, session) from error
    return cast(dict[str, Any], updated)


def allowed(
    session: Session, namespace: str, verb: str, resource: str = "schedules"
) -> tuple[bool, str]:
    """Whether the user may ``verb`` ``resource`` in ``namespace``, and why not if not."""
    review = kubernetes.client.V1SelfSubjectAccessReview(
        spec=kubernetes.client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=kubernetes.client.V1ResourceAttributes(
                group=GROUP, namespace=namespace, verb=verb, resource=resource
            )
        )
    )
    api = kubernetes.client.AuthorizationV1Api(session.api_client)
    try:
        answer = api.create_self_subject_access_review(review)
    except ApiException as error:
        return False, f"cannot check the permission: {api_error(error, 'access review')}"
    except HTTPError as error:
        return False, str(unreachable(error, session))
    status = answer.status
    if status is not None and status.allowed:
        return True, ""
    why = status.reason if status is not None and status.reason else ""
    text = f'you may not {verb} {resource}.{GROUP} in namespace "{namespace}"'
    return False, f"{text}: {why}" if why else text


__all__ = [
    "PluginError",
    "allowed",
    "apply_action",
    "backfill_patch",
    "new_token",
    "pause_patch",
    "reset_patch",
    "resume_patch",
    "run_now_patch",
]
