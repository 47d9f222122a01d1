"""Which Jobs and pods are a Schedule's runs, by controller owner reference, not label.

Labels say which Schedule an object is *for*; anyone who may create Jobs can
set them. A run is a Job whose controller is the Schedule itself (a run the
operator started) or the Schedule's own CronJob, and a run's pod is a pod
whose controller is that Job, as the CronJob controller's ControllerRefManager
decides. Two Schedules whose names map to one CronJob name (long names are
truncated with a hash) cannot both own it: the one created first keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Body = Mapping[str, Any]


def controller_uid(body: Body) -> str | None:
    """The uid of the object's controller (the owner reference with controller: true)."""
    references = (body.get("metadata") or {}).get("ownerReferences")
    if not isinstance(references, list):
        return None
    for reference in references:
        if isinstance(reference, Mapping) and reference.get("controller") is True:
            uid = reference.get("uid")
            return str(uid) if uid else None
    return None


def own_cronjob(cronjob: Body | None, schedule_uid: str) -> Body | None:
    """The CronJob, if this Schedule controls it."""
    if cronjob is None or controller_uid(cronjob) != schedule_uid:
        return None
    return cronjob


def own_runs(jobs: Iterable[Body], schedule_uid: str, cronjob: Body | None) -> list[Body]:
    """The Jobs controlled by the Schedule, or by its own CronJob."""
    owners = {schedule_uid}
    cronjob_uid = (cronjob or {}).get("metadata", {}).get("uid")
    if cronjob_uid:
        owners.add(str(cronjob_uid))
    return [job for job in jobs if controller_uid(job) in owners]


def own_pods(pods: Iterable[Body], job: Body) -> list[Body]:
    """The pods controlled by the Job."""
    uid = (job.get("metadata") or {}).get("uid")
    return [pod for pod in pods if uid and controller_uid(pod) == uid]


def name_holder(me: Body, rivals: Sequence[Body]) -> Body | None:
    """The Schedule that keeps a CronJob name this one shares with it, if not this one.

    The one created first keeps it (the uid breaks a tie within a second):
    the CronJob and the Jobs named after it are already that one's.
    """

    def seniority(body: Body) -> tuple[str, str]:
        meta = body.get("metadata") or {}
        return str(meta.get("creationTimestamp") or ""), str(meta.get("uid") or "")

    older = [rival for rival in rivals if seniority(rival) < seniority(me)]
    return min(older, key=seniority) if older else None
