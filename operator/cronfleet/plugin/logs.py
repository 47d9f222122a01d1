"""A run's pod log, read through the API server with the user's credentials."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from cronfleet.manifests import RUNNER_CONTAINER
from cronfleet.plugin.api import api_error, unreachable
from cronfleet.plugin.kubeconfig import PluginError, Session

# Pods carry both labels; the unprefixed one is what clusters before 1.27 set.
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def pick_run(schedule: Mapping[str, Any], run: str | None) -> str:
    """The Job whose log to show: the one asked for, else the newest run's."""
    history = (schedule.get("status") or {}).get("history") or []
    if run:
        return run
    if not history:
        name = (schedule.get("metadata") or {}).get("name")
        raise PluginError(f'schedule "{name}" has no runs yet: nothing to show')
    return str(history[0]["job"])


def gone_message(schedule: Mapping[str, Any], job: str, what: str) -> str:
    """Why there is no log, and what the status still knows about the run."""
    history = (schedule.get("status") or {}).get("history") or []
    entry = next((item for item in history if item.get("job") == job), None)
    text = (
        f"the log of run {job} is gone: {what} (finished Jobs are deleted after "
        "spec.history.successfulJobs / failedJobs newer ones, the operator's own a day after "
        "they finish)"
    )
    if entry is None:
        return text + f"; no run {job} is in the status history either"
    result = entry.get("result") or "Running"
    message = entry.get("message") or entry.get("reason") or ""
    return text + f"; the status keeps its summary: {result}" + (f": {message}" if message else "")


def newest_pod(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The Job's latest pod (a Job the operator makes has one, backoffLimit 0)."""
    if not pods:
        return None
    return max(pods, key=lambda pod: str(pod["metadata"].get("creationTimestamp") or ""))


def _summary(pod: Any) -> dict[str, Any]:
    created = pod.metadata.creation_timestamp
    return {
        "metadata": {
            "name": pod.metadata.name,
            "creationTimestamp": created.isoformat() if created is not None else None,
        }
    }


def _job_pods(core: kubernetes.client.CoreV1Api, namespace: str, job: str) -> list[Any]:
    for label in JOB_NAME_LABELS:
        listed = core.list_namespaced_pod(namespace, label_selector=f"{label}={job}")
        if listed.items:
            return list(listed.items)
    return []


def run_log(
    session: Session, namespace: str, schedule: Mapping[str, Any], job: str, tail: int | None
) -> str:
    """The runner container's log of ``job``; PluginError saying why when it is gone."""
    core = kubernetes.client.CoreV1Api(session.api_client)
    batch = kubernetes.client.BatchV1Api(session.api_client)
    try:
        try:
            batch.read_namespaced_job(job, namespace)
        except ApiException as error:
            if error.status == 404:
                raise PluginError(gone_message(schedule, job, "its Job was deleted")) from error
            raise
        pods = [_summary(pod) for pod in _job_pods(core, namespace, job)]
        pod = newest_pod(pods)
        if pod is None:
            raise PluginError(gone_message(schedule, job, "its Job has no pod (any more)"))
        text: str = core.read_namespaced_pod_log(
            pod["metadata"]["name"],
            namespace,
            container=RUNNER_CONTAINER,
            tail_lines=tail,
        )
    except ApiException as error:
        raise api_error(error, f'the log of run {job} in namespace "{namespace}"') from error
    except HTTPError as error:
        raise unreachable(error, session) from error
    return text


__all__ = ["gone_message", "newest_pod", "pick_run", "run_log"]
