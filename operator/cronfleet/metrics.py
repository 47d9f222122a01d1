"""Prometheus metrics on ``/metrics``.

Counters and histograms count what this operator process saw happen (they
start at zero with the process, as Prometheus counters do). Per-schedule
gauges are read from the cached Schedules at scrape time, so they are right
at once after a restart and cost nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cronfleet.clock import from_rfc3339
from cronfleet.cronschedule import CronError, next_fire_time, parse, zone
from cronfleet.models import Phase

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


class ScheduleCollector(Collector):
    """Gauges derived from the Schedules' status, as kube-state-metrics would."""

    def __init__(self, schedules: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self._schedules = schedules
        self._periods: dict[tuple[str, str], float | None] = {}

    def period(self, cron: str, time_zone: str) -> float | None:
        """Seconds between two fire times, for "no success in N periods" alerts."""
        key = (cron, time_zone)
        if key not in self._periods:
            try:
                spec, tz = parse(cron), zone(time_zone)
                first = next_fire_time(spec, datetime.now(UTC), tz)
                second = next_fire_time(spec, first, tz) if first else None
                gap = (second - first).total_seconds() if first and second else None
            except CronError:
                gap = None
            self._periods[key] = gap
        return self._periods[key]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        by_phase = GaugeMetricFamily(
            "cronfleet_schedules",
            "Schedules by namespace and phase.",
            labels=["namespace", "phase"],
        )
        info = GaugeMetricFamily(
            "cronfleet_schedule_info",
            "One series per Schedule with its phase, task and CronJob.",
            labels=["namespace", "schedule", "phase", "task", "cronjob"],
        )
        next_run = GaugeMetricFamily(
            "cronfleet_schedule_next_run_timestamp_seconds",
            "When the Schedule runs next (Unix time).",
            labels=["namespace", "schedule"],
        )
        last_success = GaugeMetricFamily(
            "cronfleet_schedule_last_success_timestamp_seconds",
            "When a run of the Schedule last succeeded (Unix time).",
            labels=["namespace", "schedule"],
        )
        retry_count = GaugeMetricFamily(
            "cronfleet_schedule_retry_count",
            "Retries of the Schedule's current failing run.",
            labels=["namespace", "schedule"],
        )
        failures = GaugeMetricFamily(
            "cronfleet_schedule_consecutive_failures",
            "Failed runs of the Schedule since its last success.",
            labels=["namespace", "schedule"],
        )
        period = GaugeMetricFamily(
            "cronfleet_schedule_period_seconds",
            "Seconds between two scheduled runs of the Schedule.",
            labels=["namespace", "schedule"],
        )
        counts: dict[tuple[str, str], int] = {}
        for body in list(self._schedules()):
            meta = body["metadata"]
            status = body.get("status") or {}
            spec = body.get("spec") or {}
            namespace, name = meta["namespace"], meta["name"]
            phase = status.get("phase") or "Pending"
            counts[(namespace, phase)] = counts.get((namespace, phase), 0) + 1
            info.add_metric(
                [namespace, name, phase, str(spec.get("task", "")), status.get("cronJob") or ""],
                1,
            )
            labels = [namespace, name]
            if status.get("nextRunTime"):
                next_run.add_metric(labels, from_rfc3339(status["nextRunTime"]).timestamp())
            if status.get("lastSuccessfulTime"):
                last_success.add_metric(
                    labels, from_rfc3339(status["lastSuccessfulTime"]).timestamp()
                )
            seconds = self.period(str(spec.get("cron", "")), str(spec.get("timeZone", "UTC")))
            if seconds is not None:
                period.add_metric(labels, seconds)
            retry_count.add_metric(labels, float(status.get("retryCount") or 0))
            failures.add_metric(labels, float(status.get("consecutiveFailures") or 0))
        namespaces = {namespace for namespace, _ in counts}
        for namespace in sorted(namespaces):
            for phase in Phase:
                by_phase.add_metric(
                    [namespace, phase.value], counts.get((namespace, phase.value), 0)
                )
        yield from (by_phase, info, next_run, last_success, period, retry_count, failures)


class Metrics:
    def __init__(
        self,
        schedules: Callable[[], Iterable[Mapping[str, Any]]],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.runs = Counter(
            "cronfleet_runs_total",
            "Finished runs by namespace, schedule, trigger and result.",
            ["namespace", "schedule", "trigger", "result"],
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "cronfleet_run_duration_seconds",
            "How long finished runs took.",
            ["namespace", "schedule"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.retries = Counter(
            "cronfleet_retries_total",
            "Retry Jobs created.",
            ["namespace", "schedule"],
            registry=self.registry,
        )
        self.manual_runs = Counter(
            "cronfleet_manual_runs_total",
            "Manual (run-now) Jobs created.",
            ["namespace", "schedule"],
            registry=self.registry,
        )
        self.missed_runs = Counter(
            "cronfleet_missed_runs_total",
            "Scheduled times that passed without a run.",
            ["namespace", "schedule", "reason"],
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "cronfleet_reconcile_errors_total",
            "Reconciles that failed and were retried.",
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "cronfleet_reconcile_duration_seconds",
            "How long one reconcile of a Schedule took.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.api_requests = Counter(
            "cronfleet_api_requests_total",
            "Requests the operator sent to the Kubernetes API (watches excluded).",
            registry=self.registry,
        )
        self.registry.register(ScheduleCollector(schedules))

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)


def miss_reason_label(reason: str) -> str:
    """A bounded label value for a missed run's cause."""
    return "concurrency_forbid" if "concurrencyPolicy is Forbid" in reason else "not_started"
