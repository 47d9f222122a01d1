"""The Schedule API: pydantic models of spec and status.

These models are the code's contract and the source of the CRD's OpenAPI
schema (``cronfleet.crd`` generates ``crds/`` from them), so the two cannot
drift. Every field carries the description ``kubectl explain`` shows.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "cronfleet.io"
VERSION = "v1alpha1"
KIND = "Schedule"
PLURAL = "schedules"
API_VERSION = f"{GROUP}/{VERSION}"

MAX_PARAMS_BYTES = 32 * 1024
# A shape check only; cronfleet.cronrules holds the CronJob's full grammar.
# \s is spelled out as the API server's Go regexp reads it (ASCII), since
# pydantic's engine would also count Unicode spaces.
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every [^\t\n\f\r ]+"
    r"|[^\t\n\f\r ]+([\t\n\f\r ]+[^\t\n\f\r ]+){4})$"
)
TASK_PATTERN = r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$"
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _preserve(description: str) -> Any:
    """A free-form object: the API server keeps whatever it holds."""
    return Field(
        default=None,
        description=description,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class ConcurrencyPolicy(StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class OnExhausted(StrEnum):
    SUSPEND = "Suspend"
    CONTINUE = "Continue"


class Phase(StrEnum):
    ACTIVE = "Active"
    PAUSED = "Paused"
    FAILED = "Failed"
    INVALID = "Invalid"
    # The last allowed run cycle ended (an `at` run, endTime, maxRuns) and succeeded.
    COMPLETED = "Completed"


class RunTrigger(StrEnum):
    SCHEDULED = "Scheduled"
    MANUAL = "Manual"
    RETRY = "Retry"
    # A fire time missed while runs could not start, run on recovery.
    CATCH_UP = "CatchUp"
    # A fire time of a past range, asked for with the backfill annotation.
    BACKFILL = "Backfill"
    # An upstream Schedule's run cycle ended the way spec.after asks for.
    AFTER = "After"


class AfterOn(StrEnum):
    """Which end of an upstream's run cycle starts a downstream run."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    # Any end: succeeded, failed after its retries, or cancelled.
    FINISHED = "Finished"


class MissCause(StrEnum):
    NOT_STARTED = "NotStarted"
    CONCURRENCY_FORBID = "ConcurrencyForbid"


class CatchUpPolicy(StrEnum):
    NONE = "None"
    LATEST = "Latest"
    ALL = "All"


class RunResult(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    # Ended by policy or by a person (replaced under Replace, Job deleted): counted,
    # announced, never retried.
    CANCELLED = "Cancelled"


# -- spec ------------------------------------------------------------------------

# A Schedule's name: a DNS subdomain (what the API server allows for object names).
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
MAX_UPSTREAMS = 20
# Bounds that keep one Schedule far below etcd's object size limit.
MAX_ENV = 100
MAX_ENV_FROM = 20
MAX_TOLERATIONS = 50


class Upstream(ApiModel):
    """A Schedule of the same namespace whose run cycles start runs of this one."""

    schedule: str = Field(
        description="The upstream Schedule's name, in this Schedule's namespace.",
        min_length=1,
        max_length=253,
        pattern=NAME_PATTERN,
    )
    on: AfterOn | None = Field(
        default=None,
        description=(
            "Which end of an upstream run cycle (a run and its retries) starts a run here: "
            "Succeeded (the default), Failed (after its retries) or Finished (any end, "
            "cancelled included)."
        ),
    )
    # YAML 1.1 readers (kubectl, Helm, Argo CD) read an unquoted `on:` key as the
    # boolean true, so `on: Failed` reaches the API server as "true": "Failed".
    # Accepting that key makes the natural spelling work with every tool.
    on_unquoted: AfterOn | None = Field(
        default=None,
        alias="true",
        description="`on` as YAML 1.1 tools send it when the key is not quoted; same values.",
    )
    namespace: str | None = Field(
        default=None,
        description="Not allowed: an upstream is always in the Schedule's own namespace.",
    )

    @property
    def when(self) -> AfterOn:
        """The end that starts a run: ``on``, however it was spelled; Succeeded by default."""
        return self.on or self.on_unquoted or AfterOn.SUCCEEDED


class Backoff(ApiModel):
    """Delay before retry n (0-based): initialDelaySeconds * factor^n, at most maxDelaySeconds."""

    initial_delay_seconds: int = Field(
        default=30, ge=0, le=86400, description="Delay before the first retry, in seconds."
    )
    factor: float = Field(
        default=2.0, ge=1, le=10, description="Multiplier applied to the delay after each retry."
    )
    max_delay_seconds: int = Field(
        default=600, ge=0, le=86400, description="Upper bound of any retry delay, in seconds."
    )


class RetryPolicy(ApiModel):
    """How failed runs are retried before the schedule is marked Failed."""

    max_retries: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Retries of a failed run before the schedule is marked Failed; 0 disables.",
    )
    backoff: Backoff = Field(
        default_factory=Backoff,
        description="Delay between a failure and its retry.",
        json_schema_extra={"default": {}},
    )
    on_exhausted: OnExhausted = Field(
        default=OnExhausted.SUSPEND,
        description=(
            "What happens when retries run out: Suspend marks the schedule Failed and suspends "
            "its CronJob until reset; Continue marks it Failed but keeps the cadence, and the "
            "next scheduled run starts a fresh retry cycle."
        ),
    )


class CatchUp(ApiModel):
    """What happens to fire times missed while runs could not start."""

    policy: CatchUpPolicy = Field(
        default=CatchUpPolicy.LATEST,
        description=(
            "None: missed fire times are only reported. Latest: the latest one, if nothing "
            "ran since, is run once on recovery. All: each one is run, oldest first."
        ),
    )
    window_seconds: int = Field(
        default=3600,
        ge=0,
        le=31_536_000,
        description="Only fire times missed at most this long ago are caught up.",
    )


class HistoryPolicy(ApiModel):
    """How much run history is kept, in the status and as Jobs in the cluster."""

    keep: int = Field(
        default=20, ge=0, le=100, description="Runs kept in status.history, newest first."
    )
    successful_jobs: int = Field(
        default=3, ge=0, le=100, description="Finished successful Jobs kept in the cluster."
    )
    failed_jobs: int = Field(
        default=3, ge=0, le=100, description="Finished failed Jobs kept in the cluster."
    )


class ScheduleSpec(ApiModel):
    """When and what to run; the operator never writes it."""

    cron: str | None = Field(
        default=None,
        description=(
            "When to run: a 5-field cron expression (minute hour day-of-month month "
            "day-of-week, e.g. '0 2 * * *'), one of @yearly, @annually, @monthly, @weekly, "
            "@daily, @midnight, @hourly, or @every <duration> (an alias of every). Accepted "
            "exactly as a CronJob's schedule is; a CronJob runs it. Evaluated in timeZone. "
            "At most one of cron, every and at; with none the Schedule runs only on run-now."
        ),
        min_length=1,
        max_length=256,
        pattern=CRON_PATTERN,
    )
    every: str | None = Field(
        default=None,
        description=(
            "Run at a fixed interval in absolute time (daylight-saving changes do not move it): "
            "hours, minutes and seconds such as 90m, 1h30m, 6h or 30s, at least 10s. Fire times "
            "are startTime + k*every (k >= 0) when startTime is set, else creation + k*every "
            "(k >= 1). The operator starts these runs itself."
        ),
        min_length=2,
        max_length=32,
        pattern=r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$",
    )
    at: datetime | None = Field(
        default=None,
        description=(
            "Run once at this instant (RFC 3339). An instant already past when the Schedule "
            "is created does not run. After that run's cycle the phase is Completed."
        ),
    )
    start_time: datetime | None = Field(
        default=None,
        description="No scheduled run before this instant (RFC 3339); with every, it fires.",
    )
    end_time: datetime | None = Field(
        default=None,
        description=(
            "No scheduled run at or after this instant (RFC 3339); then the phase is Completed "
            "(or Failed if the last run cycle exhausted its retries)."
        ),
    )
    max_runs: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description=(
            "At most this many scheduled runs (retries and manual runs do not count); then "
            "the phase is Completed (or Failed if the last cycle exhausted its retries)."
        ),
    )
    ttl_seconds_after_completed: int | None = Field(
        default=None,
        ge=0,
        le=31_536_000,
        description=(
            "Delete the Schedule (and so its Jobs) this many seconds after it is Completed. "
            "Do not set it on Schedules a GitOps tool applies: it would create them again."
        ),
    )
    time_zone: str = Field(
        default="UTC",
        description="IANA time zone the cron expression is evaluated in, e.g. Asia/Kolkata.",
        max_length=64,
        pattern=TIME_ZONE_PATTERN,
    )
    suspend: bool = Field(
        default=False, description="Pause the schedule: no scheduled runs while true."
    )
    task: str = Field(
        description="The shared runner's task to run, e.g. http, command, python.",
        min_length=1,
        max_length=63,
        pattern=TASK_PATTERN,
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Parameters of the task, a JSON object (at most 32 KiB when serialised); passed "
            "to the runner as CRONFLEET_PARAMS."
        ),
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True, "default": {}},
    )
    env: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=MAX_ENV,
        description="Environment variables of the runner container (core/v1 EnvVar list).",
        json_schema_extra={
            "items": {
                "type": "object",
                "required": ["name"],
                "x-kubernetes-preserve-unknown-fields": True,
            }
        },
    )
    env_from: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=MAX_ENV_FROM,
        description="Sources of environment variables (core/v1 EnvFromSource list).",
        json_schema_extra={
            "items": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {
                    "prefix": {
                        "type": "string",
                        "description": "Prepended to each variable's name.",
                        "x-kubernetes-validations": [
                            {
                                "rule": "!self.startsWith('CRONFLEET_')",
                                "message": "envFrom[].prefix may not start with CRONFLEET_: "
                                "those variables are set by cronfleet",
                            }
                        ],
                    }
                },
            }
        },
    )
    service_account_name: str | None = Field(
        default=None,
        description="ServiceAccount the run's pod uses; it must exist in the namespace.",
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )
    resources: dict[str, Any] | None = _preserve(
        "Compute resources of the runner container (core/v1 ResourceRequirements)."
    )
    node_selector: dict[str, str] | None = Field(
        default=None, description="Node labels the run's pod must match."
    )
    tolerations: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=MAX_TOLERATIONS,
        description="Tolerations of the run's pod (core/v1 Toleration list).",
        json_schema_extra={
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        },
    )
    priority_class_name: str | None = Field(
        default=None, description="PriorityClass of the run's pod.", max_length=253
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        default=ConcurrencyPolicy.FORBID,
        description=(
            "What to do when a run is due while the previous one still runs: Allow runs both, "
            "Forbid skips the new run, Replace stops the old run."
        ),
    )
    starting_deadline_seconds: int = Field(
        default=300,
        ge=0,
        le=86400,
        description=(
            "A run that cannot start within this many seconds of its scheduled time is "
            "skipped (and reported as missed)."
        ),
    )
    start_timeout_seconds: int = Field(
        default=300,
        ge=10,
        le=86400,
        description=(
            "A run whose pod has not started this many seconds after its Job was created "
            "(a missing Secret, an image that cannot be pulled, pods the API server refuses) "
            "is stopped and counted as Failed with reason Blocked, so the retry policy applies. "
            "It is reported as RunBlocked within seconds, long before this."
        ),
    )
    timeout_seconds: int = Field(
        default=3600,
        ge=1,
        le=604800,
        description=(
            "A run still going after this many seconds is stopped and counted as TimedOut "
            "(the Job's activeDeadlineSeconds)."
        ),
    )
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy,
        description="Retries of failed runs, with backoff.",
        json_schema_extra={"default": {}},
    )
    catch_up: CatchUp = Field(
        default_factory=CatchUp,
        description=(
            "Run fire times missed while runs could not start (operator, controller-manager "
            "or cluster down; a run skipped past startingDeadlineSeconds) on recovery."
        ),
        json_schema_extra={"default": {}},
    )
    history: HistoryPolicy = Field(
        default_factory=HistoryPolicy,
        description="How much run history is kept.",
        json_schema_extra={"default": {}},
    )
    after: list[Upstream] | None = Field(
        default=None,
        max_length=MAX_UPSTREAMS,
        description=(
            "Run after these Schedules of the same namespace: once for each upstream run "
            "cycle that ends as its `on` says (any of them; no join). The upstream's Job, "
            "result and data reach the run as CRONFLEET_UPSTREAM_* variables."
        ),
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["schedule"],
        },
    )


# -- status ----------------------------------------------------------------------


class Condition(ApiModel):
    """A metav1.Condition."""

    type: str = Field(description="Type of the condition, e.g. Ready.")
    status: str = Field(description="True, False or Unknown.", pattern="^(True|False|Unknown)$")
    reason: str = Field(default="", description="Machine-readable reason in CamelCase.")
    message: str = Field(default="", description="Human-readable details.")
    observed_generation: int | None = Field(
        default=None, description="The spec generation the condition was computed from."
    )
    last_transition_time: str | None = Field(
        default=None, description="When the status last changed (RFC 3339)."
    )


class RunRecord(ApiModel):
    """One run of the schedule."""

    job: str = Field(description="Name of the run's Job.")
    trigger: RunTrigger = Field(
        default=RunTrigger.SCHEDULED,
        description="Scheduled, Manual, Retry, CatchUp, Backfill or After.",
    )
    attempt: int = Field(default=0, description="0 for the first try, n for the n-th retry.")
    scheduled_time: str | None = Field(default=None, description="When the run was due.")
    start_time: str | None = Field(default=None, description="When the run started.")
    completion_time: str | None = Field(default=None, description="When the run finished.")
    duration_seconds: float | None = Field(default=None, description="How long the run took.")
    result: RunResult | None = Field(
        default=None,
        description="Succeeded, Failed, TimedOut or Cancelled; empty while running.",
    )
    reason: str = Field(
        default="",
        description=(
            "Why the run ended (Completed, BackoffLimitExceeded, PermanentFailure, "
            "DeadlineExceeded, Blocked, Replaced, Deleted), or, while it cannot start, "
            "what blocks it (e.g. CreateContainerConfigError, FailedCreate, ErrImagePull)."
        ),
    )
    exit_code: int | None = Field(default=None, description="The runner's exit code.")
    message: str = Field(default="", description="The runner's summary message.")
    upstream: str | None = Field(
        default=None, description="After runs: the upstream Schedule (namespace/name)."
    )
    upstream_run: str | None = Field(
        default=None, description="After runs: the upstream Job whose cycle started this run."
    )


class RunCounts(ApiModel):
    succeeded: int = Field(default=0, description="Runs that succeeded.")
    failed: int = Field(default=0, description="Runs that failed or timed out.")
    cancelled: int = Field(
        default=0, description="Runs ended by policy or by a person (Replace, Job deleted)."
    )
    missed: int = Field(default=0, description="Scheduled times that passed without a run.")


class QueuedRun(ApiModel):
    """A catch-up or backfill run waiting for its turn (concurrencyPolicy)."""

    trigger: RunTrigger = Field(description="CatchUp, Backfill or After.")
    scheduled_time: str = Field(default="", description="The fire time it runs for.")
    request: str = Field(default="", description="The backfill annotation's value.")
    upstream: str = Field(default="", description="After: the upstream Schedule's name.")
    upstream_run: str = Field(default="", description="After: the upstream cycle's last Job.")
    upstream_result: str = Field(default="", description="After: how that cycle ended.")
    upstream_data: str = Field(
        default="", description="After: the upstream runner's data, as JSON (at most 4 KiB)."
    )


class CycleRecord(ApiModel):
    """A run cycle (a run and its retries) that ended: what downstream Schedules start on."""

    number: int = Field(description="Counts this Schedule's ended cycles, from 1.")
    run: str = Field(description="The cycle's last Job: the success, or the last failed try.")
    result: RunResult = Field(description="Succeeded, Failed or Cancelled.")
    trigger: RunTrigger = Field(description="What started the cycle.")
    finished_time: str | None = Field(default=None, description="When the cycle ended.")
    data: str | None = Field(
        default=None,
        description="The runner's data of the last run, as JSON; kept only with downstreams.",
    )


class UpstreamStatus(ApiModel):
    """One entry of spec.after, as the operator follows it."""

    schedule: str = Field(description="The upstream Schedule.")
    on: AfterOn = Field(default=AfterOn.SUCCEEDED, description="As in spec.after.")
    found: bool = Field(default=False, description="Whether the upstream Schedule exists.")
    uid: str = Field(default="", description="The upstream Schedule object followed.")
    handled_cycle: int = Field(
        default=0, description="The upstream's cycles up to this number were acted on."
    )
    last_run: str | None = Field(
        default=None, description="The upstream Job whose cycle last started a run here."
    )
    last_result: str | None = Field(default=None, description="How that cycle ended.")


class ManualRunState(StrEnum):
    """What a run-now token led to."""

    STARTED = "Started"
    # Waiting for its turn (concurrencyPolicy); it starts once there is room.
    DEFERRED = "Deferred"
    # Started nothing, for good: annotate a new token once the cause is gone.
    REFUSED = "Refused"


class ManualRun(ApiModel):
    """A run-now token and what it started, or why it started nothing."""

    token: str = Field(description="The cronfleet.io/run-now annotation's value.")
    state: ManualRunState = Field(description="Started, Deferred or Refused.")
    job: str | None = Field(default=None, description="The Job it started (Started).")
    message: str = Field(default="", description="Why it waits or was refused.")
    time: str | None = Field(default=None, description="When the operator acted on it.")


class MissedRun(ApiModel):
    """A scheduled time that passed without a run."""

    scheduled_time: str = Field(description="When the run was due.")
    reason: str = Field(default="", description="Why it did not run, where known.")
    cause: str = Field(
        default="",
        description="NotStarted (no Job started in time) or ConcurrencyForbid (the last run "
        "still ran under Forbid).",
    )


class ScheduleStatus(ApiModel):
    """What the operator observed; written only by the operator."""

    phase: Phase | None = Field(
        default=None, description="Active, Paused, Failed, Invalid or Completed."
    )
    message: str = Field(default="", description="Why the schedule is in its phase.")
    observed_generation: int | None = Field(
        default=None, description="The spec generation the status reflects."
    )
    cron_job: str | None = Field(default=None, description="Name of the owned CronJob.")
    schedule_description: str | None = Field(
        default=None, description="The cron expression in words, with its time zone."
    )
    next_run_time: str | None = Field(default=None, description="Next scheduled run (RFC 3339).")
    last_run_time: str | None = Field(default=None, description="Last time a run started.")
    last_successful_time: str | None = Field(default=None, description="Last time a run succeeded.")
    last_failure_time: str | None = Field(default=None, description="Last time a run failed.")
    remaining_runs: int | None = Field(
        default=None, description="Scheduled runs left under spec.maxRuns."
    )
    scheduled_runs: int = Field(
        default=0, description="Scheduled runs started, the ones spec.maxRuns counts."
    )
    completion_time: str | None = Field(
        default=None, description="When the Schedule became Completed (RFC 3339)."
    )
    retry_count: int = Field(default=0, description="Retries of the current failing run.")
    next_retry_time: str | None = Field(default=None, description="When the next retry starts.")
    retry_of: str | None = Field(
        default=None, description="The Job whose failure the current retries repeat."
    )
    consecutive_failures: int = Field(default=0, description="Failed runs since the last success.")
    counts: RunCounts = Field(
        default_factory=RunCounts, description="Runs by result since the schedule was created."
    )
    history: list[RunRecord] = Field(
        default_factory=list, description="Recent runs, newest first (spec.history.keep)."
    )
    missed_runs: list[MissedRun] = Field(
        default_factory=list,
        description="Recent scheduled times that passed without a run, newest first.",
    )
    missed_runs_checked_until: str | None = Field(
        default=None, description="Scheduled times up to this one were checked for misses."
    )
    queued_runs: list[QueuedRun] = Field(
        default_factory=list,
        description="Catch-up, backfill and after runs waiting to start, oldest first.",
    )
    cycles: list[CycleRecord] = Field(
        default_factory=list,
        description="Recently ended run cycles, newest first: what downstreams start on.",
    )
    downstreams: list[str] = Field(
        default_factory=list,
        description="Schedules of this namespace that run after this one (spec.after).",
    )
    upstreams: list[UpstreamStatus] = Field(
        default_factory=list,
        description="The upstreams of spec.after, as followed.",
    )
    recorded_jobs: list[str] = Field(
        default_factory=list,
        description=(
            "Jobs whose outcome is already counted, newest first: counting once does not "
            "depend on how much history is kept."
        ),
    )
    manual_runs: list[ManualRun] = Field(
        default_factory=list,
        description=(
            "The latest run-now tokens, newest first (at most 10): the Job each started, "
            "or why it waits or started none."
        ),
    )
    last_handled_tokens: dict[str, str] = Field(
        default_factory=dict,
        description="The run-now and reset annotation tokens already acted on.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready and other conditions.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
