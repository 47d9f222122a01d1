"""Runs: what a Job and its pod say about one run, and the names of the Jobs
the operator creates itself (retries and manual runs).

Pure functions of the observed objects; the ledger of which runs were
already counted is the Schedule's ``status.history`` together with the
``cronfleet.io/recorded`` annotation on the Job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cronfleet.clock import from_rfc3339, to_rfc3339
from cronfleet.models import Backoff, RunRecord, RunResult, RunTrigger
from cronfleet.naming import (
    ATTEMPT_ANNOTATION,
    ORIGIN_ANNOTATION,
    SCHEDULED_TIME_ANNOTATION,
    TRIGGER_ANNOTATION,
    UPSTREAM_ANNOTATION,
    UPSTREAM_RUN_ANNOTATION,
)

CRONJOB_SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# `kubectl create job --from=cronjob/X` marks the Jobs it makes this way.
INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"
INSTANTIATE_MANUAL = "manual"
PERMANENT_FAILURE_EXIT_CODE = 2
MAX_MESSAGE = 1024
# The runner bounds its summary's data to this; a downstream gets no more.
MAX_DATA_BYTES = 4096
# Job names are label values (63); the pods' generated suffix fits within pod names.
JOB_NAME_LIMIT = 63
# Waiting reasons of a container that will not start without someone acting.
# ContainerCreating and PodInitializing are the normal way to start, so they
# are not among them.
BLOCKING_WAIT_REASONS = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "RunContainerError",
    }
)
# How long a Job may have no pod before the operator reads its events: the Job
# controller creates pods within a second or two, unless the API server refuses
# them (a missing PriorityClass, a quota, PodSecurity), which it reports only as
# FailedCreate events on the Job. A FailedCreate event blocks the run at once.
NO_POD_GRACE = timedelta(seconds=8)
NO_POD_REASON = "FailedCreate"
# With no pod and no FailedCreate event, the Job controller is behind (its
# client is rate-limited: 20 requests a second by default, shared by every
# controller) or not running. Only a wait this long counts as blocked, so a
# busy controller-manager does not raise false alarms.
NO_POD_SILENT_GRACE = timedelta(seconds=60)
NO_POD_SILENT_REASON = "PodNotCreated"


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            found: Mapping[str, Any] = condition
            return found
    return None


def job_result(job: Mapping[str, Any]) -> RunResult | None:
    """Succeeded, Failed or TimedOut once the Job controller has decided; else None."""
    if _condition(job, "Complete"):
        return RunResult.SUCCEEDED
    failed = _condition(job, "Failed")
    if failed:
        if failed.get("reason") == "DeadlineExceeded":
            return RunResult.TIMED_OUT
        return RunResult.FAILED
    return None


def scheduled_time(job: Mapping[str, Any]) -> datetime | None:
    """When the run was due: the CronJob controller's annotation, ours, or the name.

    The CronJob controller names its Jobs ``<cronjob>-<minutes since the epoch>``.
    """
    annotations = job["metadata"].get("annotations") or {}
    for key in (SCHEDULED_TIME_ANNOTATION, CRONJOB_SCHEDULED_ANNOTATION):
        if annotations.get(key):
            try:
                return from_rfc3339(annotations[key])
            except ValueError:
                pass
    suffix = job["metadata"]["name"].rsplit("-", 1)[-1]
    if suffix.isdigit() and len(suffix) >= 8:
        return datetime.fromtimestamp(int(suffix) * 60, UTC)
    return None


def trigger_of(job: Mapping[str, Any]) -> RunTrigger:
    annotations = job["metadata"].get("annotations") or {}
    # kubectl copies the CronJob's template, whose trigger says Scheduled, and
    # adds its own mark: a person started this run.
    if annotations.get(INSTANTIATE_ANNOTATION) == INSTANTIATE_MANUAL:
        return RunTrigger.MANUAL
    value = str(annotations.get(TRIGGER_ANNOTATION))
    try:
        return RunTrigger(value)
    except ValueError:
        return RunTrigger.SCHEDULED


def attempt_of(job: Mapping[str, Any]) -> int:
    value = (job["metadata"].get("annotations") or {}).get(ATTEMPT_ANNOTATION, "0")
    return int(value) if str(value).isdigit() else 0


def origin_of(job: Mapping[str, Any]) -> str:
    """The first run of a retry chain: a retry names it, any other run is its own."""
    annotations = job["metadata"].get("annotations") or {}
    origin: str = annotations.get(ORIGIN_ANNOTATION) or job["metadata"]["name"]
    return origin


def runner_outcome(pods: Sequence[Mapping[str, Any]]) -> tuple[int | None, str]:
    """Exit code and message of the runner container of the Job's last pod."""
    best: tuple[str, int | None, str] | None = None
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if not terminated:
                continue
            finished = str(terminated.get("finishedAt") or "")
            code = terminated.get("exitCode")
            message = summary_message(str(terminated.get("message") or ""))
            if best is None or finished >= best[0]:
                best = (finished, code, message)
    if best is None:
        return None, ""
    return best[1], best[2]


def runner_data(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The ``data`` of the runner's summary in the Job's last pod, as compact JSON.

    None when the runner wrote none (or no summary at all), or when it is larger
    than the runner contract allows.
    """
    best: tuple[str, str] | None = None
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if terminated:
                finished = str(terminated.get("finishedAt") or "")
                if best is None or finished >= best[0]:
                    best = (finished, str(terminated.get("message") or ""))
    if best is None:
        return None
    try:
        summary = json.loads(best[1].strip())
    except json.JSONDecodeError:
        return None
    if not isinstance(summary, dict) or summary.get("data") is None:
        return None
    encoded = json.dumps(summary["data"], separators=(",", ":"), sort_keys=True)
    return encoded if len(encoded.encode()) <= MAX_DATA_BYTES else None


def summary_message(text: str) -> str:
    """The runner writes a JSON summary; anything else (a log tail) is kept as it is."""
    text = text.strip()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return text[-MAX_MESSAGE:]
    if isinstance(parsed, dict) and "message" in parsed:
        return str(parsed["message"])[:MAX_MESSAGE]
    return text[-MAX_MESSAGE:]


def started(pods: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any container of the run ever ran (so it is not blocked from starting)."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            state = status.get("state") or {}
            if "running" in state or "terminated" in state:
                return True
            if "terminated" in (status.get("lastState") or {}):
                return True
    return False


def blocked_by(
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    now: datetime,
    job_message: str = "",
) -> tuple[str, str] | None:
    """(reason, message) when the run cannot start; None while it starts or runs normally.

    ``job_message`` is what the Job's FailedCreate events say, where the
    controller looked them up.
    """
    if job_result(job) is not None or started(pods):
        return None
    for pod in pods:
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in BLOCKING_WAIT_REASONS:
                return str(waiting["reason"]), str(waiting.get("message") or "")
        for condition in status.get("conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
            ):
                return "Unschedulable", str(condition.get("message") or "")
    if pods or (job.get("spec") or {}).get("suspend"):
        return None
    created = job["metadata"].get("creationTimestamp")
    if not created:
        return None
    waited = now - from_rfc3339(created)
    if job_message and waited >= NO_POD_GRACE:
        return NO_POD_REASON, job_message
    if waited >= NO_POD_SILENT_GRACE:
        return NO_POD_SILENT_REASON, (
            f"the Job has had no pod for {int(waited.total_seconds())}s and no FailedCreate "
            "event: the Job controller (kube-controller-manager) is stopped or far behind"
        )
    return None


def end_reason(job: Mapping[str, Any], result: RunResult | None, exit_code: int | None) -> str:
    """A stable reason for a finished run, from the Job's own conditions."""
    if result is None:
        return ""
    if result is RunResult.SUCCEEDED:
        return "Completed"
    if exit_code == PERMANENT_FAILURE_EXIT_CODE:
        return "PermanentFailure"
    failed = _condition(job, "Failed")
    return str((failed or {}).get("reason") or "Failed")


def run_record(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> RunRecord:
    status = job.get("status") or {}
    result = job_result(job)
    start = status.get("startTime")
    completion = status.get("completionTime")
    if result is not None and not completion:
        failed = _condition(job, "Failed")
        completion = failed.get("lastTransitionTime") if failed else None
    duration = None
    if start and completion:
        duration = (from_rfc3339(completion) - from_rfc3339(start)).total_seconds()
    exit_code, message = runner_outcome(pods) if result is not None else (None, "")
    if result is not None and not message:
        failed = _condition(job, "Failed")
        message = str(failed.get("message") or "") if failed else ""
    due = scheduled_time(job)
    annotations = job["metadata"].get("annotations") or {}
    return RunRecord(
        job=job["metadata"]["name"],
        trigger=trigger_of(job),
        attempt=attempt_of(job),
        scheduled_time=to_rfc3339(due) if due else None,
        start_time=start,
        completion_time=completion if result is not None else None,
        duration_seconds=duration,
        result=result,
        exit_code=exit_code,
        message=message,
        reason=end_reason(job, result, exit_code),
        upstream=annotations.get(UPSTREAM_ANNOTATION) or None,
        upstream_run=annotations.get(UPSTREAM_RUN_ANNOTATION) or None,
    )


def retry_delay(backoff: Backoff, retry_index: int) -> timedelta:
    """Delay before retry ``retry_index`` (0 for the first): initial x factor^n, capped."""
    seconds = backoff.initial_delay_seconds * backoff.factor**retry_index
    return timedelta(seconds=min(seconds, backoff.max_delay_seconds))


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _job_name(cronjob: str, kind: str, key: str) -> str:
    # <cronjob>-<kind>-<hash>: deterministic, so creating it twice is AlreadyExists.
    tail = f"-{kind}-{_short_hash(key)}"
    return cronjob[: JOB_NAME_LIMIT - len(tail)].rstrip("-.") + tail


def retry_job_name(cronjob: str, origin: str, attempt: int) -> str:
    return _job_name(cronjob, f"r{attempt}", origin)


def manual_job_name(cronjob: str, token: str) -> str:
    return _job_name(cronjob, "m", token)


def catch_up_job_name(cronjob: str, fire_time: str) -> str:
    return _job_name(cronjob, "c", fire_time)


def backfill_job_name(cronjob: str, request: str, fire_time: str) -> str:
    return _job_name(cronjob, "b", f"{request}|{fire_time}")


def after_job_name(cronjob: str, upstream: str, upstream_run: str) -> str:
    # From the upstream run alone: a restart, or the upstream's history being
    # trimmed, finds the same name, and creating it twice is AlreadyExists.
    return _job_name(cronjob, "a", f"{upstream}|{upstream_run}")
