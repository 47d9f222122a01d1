"""The runner contract between the operator and the shared runner image.

The operator starts a pod whose environment names the task, its params and
the run it belongs to; the runner answers with an exit code and a one-line
JSON summary in the termination-message file. Everything both sides must
agree on is named here.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

ENV_TASK = "CRONFLEET_TASK"
ENV_PARAMS = "CRONFLEET_PARAMS"
ENV_SCHEDULE = "CRONFLEET_SCHEDULE"
ENV_RUN = "CRONFLEET_RUN"
ENV_TRIGGER = "CRONFLEET_TRIGGER"
ENV_ATTEMPT = "CRONFLEET_ATTEMPT"
ENV_SCHEDULED_TIME = "CRONFLEET_SCHEDULED_TIME"
ENV_TERMINATION_MESSAGE_PATH = "CRONFLEET_TERMINATION_MESSAGE_PATH"
# Optional: how long a task may clean up after SIGTERM before the runner exits.
ENV_STOP_GRACE_SECONDS = "CRONFLEET_STOP_GRACE_SECONDS"
# Set only for runs with trigger After (spec.after): the upstream run cycle
# that started this run. The upstream Schedule as namespace/name, its Job
# (the cycle's last run), how the cycle ended (Succeeded, Failed or
# Cancelled), and the `data` of its runner summary as compact JSON (sorted
# keys, at most MAX_UPSTREAM_DATA_BYTES) or `null` when it wrote none.
ENV_UPSTREAM = "CRONFLEET_UPSTREAM"
ENV_UPSTREAM_RUN = "CRONFLEET_UPSTREAM_RUN"
ENV_UPSTREAM_RESULT = "CRONFLEET_UPSTREAM_RESULT"
ENV_UPSTREAM_DATA = "CRONFLEET_UPSTREAM_DATA"
MAX_UPSTREAM_DATA_BYTES = 4096

# Every contract variable starts so; a Schedule's own env may not.
CONTRACT_PREFIX = "CRONFLEET_"
# Which variables hold Secret values, so that the runner masks those values
# in its summary and logs (cronfleet_runner.masking): the names of the
# Schedule's env entries with secretKeyRef; the name patterns (`*`, or
# `PREFIX*` for an envFrom prefix) of the envFrom Secrets' variables; and the
# names the spec sets without a Secret, exempt from those patterns. Each is
# comma-separated and always set by the operator, so that a Schedule's
# envFrom cannot set them (env wins over envFrom).
ENV_SECRET_ENV = "CRONFLEET_SECRET_ENV"
ENV_SECRET_ENV_FROM = "CRONFLEET_SECRET_ENV_FROM"
ENV_PLAIN_ENV = "CRONFLEET_PLAIN_ENV"
# The addresses the http task must not connect to (cronfleet_runner.egress):
# comma-separated CIDRs added to the built-in list of link-local and cloud
# metadata addresses, `none` to drop the built-in list; set per cluster.
ENV_HTTP_DENY_CIDRS = "CRONFLEET_HTTP_DENY_CIDRS"

DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"

# The operator retries exit 1 later, with backoff; the Job's podFailurePolicy
# fails the Job at once on exit 2 and the operator does not retry it.
EXIT_SUCCEEDED = 0
EXIT_RETRYABLE = 1
EXIT_PERMANENT = 2

# A run stopped by a signal exits the way a shell reports a process killed by
# that signal (128 + signal number): 143 for SIGTERM, which is what Kubernetes
# sends when a Job's activeDeadlineSeconds passes or its pod is deleted.
# It is neither 1 nor 2, so the operator can tell "stopped" from "failed".
EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_INTERRUPTED = 128 + signal.SIGINT

RESULT_SUCCEEDED: Final = "Succeeded"
RESULT_FAILED: Final = "Failed"


def exit_code_for_signal(signum: int) -> int:
    return 128 + signum


@dataclass(frozen=True)
class RunMetadata:
    """Which run this process is: read from the environment, logged on every line."""

    task: str
    schedule: str | None
    run: str | None
    trigger: str | None
    attempt: int | None
    scheduled_time: str | None
    # CRONFLEET_ATTEMPT as written, kept when it is not a number so that a
    # wrong value shows in the logs instead of vanishing.
    attempt_raw: str | None = None
    # After runs only: the upstream Schedule (namespace/name) whose run cycle
    # started this run, so a chain can be followed through the logs.
    upstream: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RunMetadata:
        def optional(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        attempt_raw = optional(ENV_ATTEMPT)
        attempt: int | None = None
        if attempt_raw is not None and attempt_raw.isdigit():
            attempt = int(attempt_raw)
        return cls(
            task=environ.get(ENV_TASK, "").strip(),
            schedule=optional(ENV_SCHEDULE),
            run=optional(ENV_RUN),
            trigger=optional(ENV_TRIGGER),
            attempt=attempt,
            scheduled_time=optional(ENV_SCHEDULED_TIME),
            attempt_raw=attempt_raw if attempt is None else None,
            upstream=optional(ENV_UPSTREAM),
        )

    def log_fields(self) -> dict[str, object]:
        fields: dict[str, object] = {
            "task": self.task or None,
            "schedule": self.schedule,
            "run": self.run,
            "trigger": self.trigger,
            "attempt": self.attempt,
            "scheduledTime": self.scheduled_time,
            "upstream": self.upstream,
        }
        if self.attempt_raw is not None:
            fields["attemptRaw"] = self.attempt_raw
        return fields


def termination_message_path(environ: Mapping[str, str]) -> str:
    return environ.get(ENV_TERMINATION_MESSAGE_PATH) or DEFAULT_TERMINATION_MESSAGE_PATH
