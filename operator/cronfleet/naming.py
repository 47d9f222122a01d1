"""Names and labels of the objects a Schedule owns."""

from __future__ import annotations

import hashlib

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "cronfleet"
SCHEDULE_LABEL = "cronfleet.io/schedule"
TRIGGER_ANNOTATION = "cronfleet.io/trigger"
ATTEMPT_ANNOTATION = "cronfleet.io/attempt"
SCHEDULED_TIME_ANNOTATION = "cronfleet.io/scheduled-time"
ORIGIN_ANNOTATION = "cronfleet.io/origin"
RECORDED_ANNOTATION = "cronfleet.io/recorded"
# After runs: which upstream run cycle started them.
UPSTREAM_ANNOTATION = "cronfleet.io/upstream"
UPSTREAM_RUN_ANNOTATION = "cronfleet.io/upstream-run"
UPSTREAM_RESULT_ANNOTATION = "cronfleet.io/upstream-result"

# The CronJob controller appends an 11-character suffix to its Jobs' names,
# and Job names must stay within 63, hence the API server's 52 for CronJobs.
CRONJOB_NAME_LIMIT = 52
HASH_LENGTH = 8


def cronjob_name(schedule_name: str) -> str:
    """The Schedule's name if it fits a CronJob, else a stable truncation plus a hash.

    The hash is of the full name, so two long names that share a prefix never
    collide, and the same Schedule always maps to the same CronJob.
    """
    if len(schedule_name) <= CRONJOB_NAME_LIMIT:
        return schedule_name
    digest = hashlib.sha256(schedule_name.encode()).hexdigest()[:HASH_LENGTH]
    prefix = schedule_name[: CRONJOB_NAME_LIMIT - HASH_LENGTH - 1].rstrip("-.")
    return f"{prefix}-{digest}"


def labels(schedule_name: str) -> dict[str, str]:
    """Labels on every owned object; label values are limited to 63 characters."""
    value = schedule_name if len(schedule_name) <= 63 else cronjob_name(schedule_name)
    return {MANAGED_BY_LABEL: MANAGED_BY, SCHEDULE_LABEL: value}
