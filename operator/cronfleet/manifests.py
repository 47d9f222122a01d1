"""The objects a Schedule becomes: its CronJob and the Job template inside it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cronfleet.config import OperatorConfig
from cronfleet.models import API_VERSION, KIND, RunTrigger, ScheduleSpec
from cronfleet.naming import (
    ATTEMPT_ANNOTATION,
    ORIGIN_ANNOTATION,
    SCHEDULED_TIME_ANNOTATION,
    TRIGGER_ANNOTATION,
    UPSTREAM_ANNOTATION,
    UPSTREAM_RESULT_ANNOTATION,
    UPSTREAM_RUN_ANNOTATION,
    cronjob_name,
    labels,
)
from cronfleet.runs import PERMANENT_FAILURE_EXIT_CODE

Manifest = dict[str, Any]

RUNNER_CONTAINER = "runner"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


@dataclass(frozen=True)
class UpstreamFacts:
    """What an After run is told about the upstream run cycle that started it."""

    schedule: str  # namespace/name
    run: str
    result: str
    data: str | None  # the runner's data, as JSON


def owner_reference(name: str, uid: str) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def literal_env_value(text: str) -> str:
    """``text`` escaped so that the kubelet passes it as written.

    The kubelet expands ``$(NAME)`` in env values from the container's other
    variables (Secret-backed ones included) and turns ``$$`` into ``$``.
    Doubling every ``$`` undoes exactly that: ``$$(NAME)`` stays literal, a
    lone ``$`` stays itself, and params such as ``"$(TOKEN)"`` reach the
    runner unexpanded instead of carrying a Secret's value into the task.
    """
    return text.replace("$", "$$")


def secret_env_names(env: list[dict[str, Any]] | None) -> list[str]:
    """Names of the ``env`` entries that take their value from a Secret."""
    return [
        str(entry["name"])
        for entry in env or []
        if isinstance(entry.get("valueFrom"), dict) and "secretKeyRef" in entry["valueFrom"]
    ]


# valueFrom sources that cannot hold a Secret's value.
PLAIN_VALUE_SOURCES = frozenset({"configMapKeyRef", "fieldRef", "resourceFieldRef"})


def plain_env_names(env: list[dict[str, Any]] | None) -> list[str]:
    """Names of the ``env`` entries whose values the spec shows not to come from a Secret.

    A literal that refers to another variable (``Bearer $(TOKEN)``) may
    carry a Secret's value, so it does not count as plain.
    """
    names: list[str] = []
    for entry in env or []:
        if "," in str(entry["name"]):
            # Cannot be listed without splitting; left out, it is masked: the safe way.
            continue
        source = entry.get("valueFrom")
        if isinstance(source, dict):
            if source and set(source) <= PLAIN_VALUE_SOURCES:
                names.append(str(entry["name"]))
        elif "$(" not in str(entry.get("value") or ""):
            names.append(str(entry["name"]))
    return names


def secret_env_from_patterns(env_from: list[dict[str, Any]] | None) -> list[str]:
    """Name patterns of the variables ``envFrom`` Secrets set: ``*`` or ``PREFIX*``.

    The operator does not read Secrets (it would need get on every Secret of
    every namespace), so it cannot know their keys; the runner masks every
    variable such a pattern matches instead, except the plain ones.
    """
    patterns: list[str] = []
    for source in env_from or []:
        if isinstance(source, dict) and "secretRef" in source:
            pattern = f"{source.get('prefix') or ''}*"
            if pattern not in patterns:
                patterns.append(pattern)
    return patterns


def runner_env(
    namespace: str,
    name: str,
    spec: ScheduleSpec,
    trigger: RunTrigger,
    attempt: int,
    scheduled_time: str | None = None,
    upstream: UpstreamFacts | None = None,
    *,
    http_deny_cidrs: str = "default",
) -> list[Manifest]:
    """The runner contract's variables, then the user's own.

    The masking and deny-list variables are always set, empty or not: set
    in ``env``, they win over anything a Schedule's ``envFrom`` holds.
    """
    contract: list[Manifest] = [
        {"name": "CRONFLEET_TASK", "value": spec.task},
        {
            "name": "CRONFLEET_PARAMS",
            "value": literal_env_value(json.dumps(spec.params, separators=(",", ":"))),
        },
        {"name": "CRONFLEET_SCHEDULE", "value": f"{namespace}/{name}"},
        {
            "name": "CRONFLEET_RUN",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{JOB_NAME_LABEL}']"}},
        },
        {"name": "CRONFLEET_TRIGGER", "value": trigger.value},
        {"name": "CRONFLEET_ATTEMPT", "value": str(attempt)},
        {"name": "CRONFLEET_SECRET_ENV", "value": ",".join(secret_env_names(spec.env))},
        {
            "name": "CRONFLEET_SECRET_ENV_FROM",
            "value": ",".join(secret_env_from_patterns(spec.env_from)),
        },
        {"name": "CRONFLEET_PLAIN_ENV", "value": ",".join(plain_env_names(spec.env))},
        {"name": "CRONFLEET_HTTP_DENY_CIDRS", "value": http_deny_cidrs},
    ]
    if scheduled_time:
        # Known for the operator's own Jobs; a CronJob's Jobs carry it only in
        # their name and annotations, which a pod cannot read.
        contract.append({"name": "CRONFLEET_SCHEDULED_TIME", "value": scheduled_time})
    if upstream is not None:
        contract += [
            {"name": "CRONFLEET_UPSTREAM", "value": upstream.schedule},
            {"name": "CRONFLEET_UPSTREAM_RUN", "value": upstream.run},
            {"name": "CRONFLEET_UPSTREAM_RESULT", "value": upstream.result},
            # The upstream's data is another run's output: never expanded either.
            {
                "name": "CRONFLEET_UPSTREAM_DATA",
                "value": literal_env_value(upstream.data or "null"),
            },
        ]
    return [_stored_form(variable) for variable in contract] + list(spec.env or [])


def _stored_form(variable: Manifest) -> Manifest:
    """A variable as the API server stores it: an empty ``value`` is omitted.

    The CronJob is compared with what the API server holds; a desired
    ``value: ""`` that the server drops would look like drift at every look
    and be applied again and again.
    """
    if variable.get("value") == "":
        return {key: item for key, item in variable.items() if key != "value"}
    return variable


def pod_template(
    namespace: str,
    name: str,
    spec: ScheduleSpec,
    config: OperatorConfig,
    trigger: RunTrigger,
    attempt: int,
    scheduled_time: str | None = None,
    upstream: UpstreamFacts | None = None,
) -> Manifest:
    container: Manifest = {
        "name": RUNNER_CONTAINER,
        "image": config.runner_image,
        "imagePullPolicy": config.runner_pull_policy,
        "env": runner_env(
            namespace,
            name,
            spec,
            trigger,
            attempt,
            scheduled_time,
            upstream,
            http_deny_cidrs=config.http_deny_cidrs,
        ),
        # The runner writes its summary there; on a crash the log tail stands in.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if spec.env_from:
        container["envFrom"] = list(spec.env_from)
    if spec.resources:
        container["resources"] = dict(spec.resources)
    pod: Manifest = {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": config.runner_uid,
            "runAsGroup": config.runner_uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        # A read-only root filesystem still needs somewhere to write.
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    else:
        # Tasks do not talk to the Kubernetes API unless a team grants an account.
        pod["automountServiceAccountToken"] = False
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = list(spec.tolerations)
    if spec.priority_class_name:
        pod["priorityClassName"] = spec.priority_class_name
    return {"metadata": {"labels": labels(name)}, "spec": pod}


def job_spec(
    namespace: str,
    name: str,
    spec: ScheduleSpec,
    config: OperatorConfig,
    trigger: RunTrigger,
    attempt: int,
    scheduled_time: str | None = None,
    upstream: UpstreamFacts | None = None,
) -> Manifest:
    return {
        # Retries belong to the operator, where they are visible and delayed.
        "backoffLimit": 0,
        "activeDeadlineSeconds": spec.timeout_seconds,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": RUNNER_CONTAINER,
                        "operator": "In",
                        "values": [PERMANENT_FAILURE_EXIT_CODE],
                    },
                }
            ]
        },
        "template": pod_template(
            namespace, name, spec, config, trigger, attempt, scheduled_time, upstream
        ),
    }


# The operator's own Jobs are not the CronJob's, so its history limits do not
# remove them: they go a day after finishing, long after their run is recorded.
OWN_JOB_TTL_SECONDS = 86400


def run_job(
    namespace: str,
    name: str,
    uid: str,
    spec: ScheduleSpec,
    config: OperatorConfig,
    *,
    job_name: str,
    trigger: RunTrigger,
    attempt: int,
    scheduled_time: str | None,
    origin: str | None,
    upstream: UpstreamFacts | None = None,
) -> Manifest:
    """A run the operator starts itself (a retry, run-now, an interval or one-time fire
    time, catch-up, backfill, after an upstream): the CronJob's template, with its own
    trigger and attempt."""
    annotations = {TRIGGER_ANNOTATION: trigger.value, ATTEMPT_ANNOTATION: str(attempt)}
    if scheduled_time:
        annotations[SCHEDULED_TIME_ANNOTATION] = scheduled_time
    if origin:
        annotations[ORIGIN_ANNOTATION] = origin
    if upstream is not None:
        annotations[UPSTREAM_ANNOTATION] = upstream.schedule
        annotations[UPSTREAM_RUN_ANNOTATION] = upstream.run
        annotations[UPSTREAM_RESULT_ANNOTATION] = upstream.result
    body = job_spec(namespace, name, spec, config, trigger, attempt, scheduled_time, upstream)
    body["ttlSecondsAfterFinished"] = OWN_JOB_TTL_SECONDS
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": namespace,
            "labels": labels(name),
            "annotations": annotations,
            "ownerReferences": [owner_reference(name, uid)],
        },
        "spec": body,
    }


def desired_cronjob(
    namespace: str,
    name: str,
    uid: str,
    spec: ScheduleSpec,
    config: OperatorConfig,
    suspend: bool,
) -> Manifest:
    """The CronJob for a valid spec; ``suspend`` folds in pause and the Failed state."""
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": cronjob_name(name),
            "namespace": namespace,
            "labels": labels(name),
            "ownerReferences": [owner_reference(name, uid)],
        },
        "spec": {
            "schedule": spec.cron,
            "timeZone": spec.time_zone,
            "suspend": suspend,
            "concurrencyPolicy": spec.concurrency_policy.value,
            "startingDeadlineSeconds": spec.starting_deadline_seconds,
            "successfulJobsHistoryLimit": spec.history.successful_jobs,
            "failedJobsHistoryLimit": spec.history.failed_jobs,
            "jobTemplate": {
                "metadata": {
                    "labels": labels(name),
                    "annotations": {
                        TRIGGER_ANNOTATION: RunTrigger.SCHEDULED.value,
                        ATTEMPT_ANNOTATION: "0",
                    },
                },
                "spec": job_spec(namespace, name, spec, config, RunTrigger.SCHEDULED, 0),
            },
        },
    }


def contains(observed: Any, desired: Any) -> bool:
    """Whether every value ``desired`` sets is present, equal, in ``observed``.

    The API server adds defaults to what it stores, so equality is too strict;
    a field the operator sets that differs (a hand edit, a spec change) is drift.
    """
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return False
        return all(
            key in observed and contains(observed[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(observed) != len(desired):
            return False
        return all(contains(o, d) for o, d in zip(observed, desired, strict=True))
    return bool(observed == desired)
