"""Prometheus metrics on ``/metrics``.

Counters and histograms of :class:`Metrics` count what this operator process
saw happen (they start at zero with the process, as Prometheus counters do).
The per-Schedule series of :class:`ScheduleCollector` are read from the
cached Schedules' status at scrape time: they are right at once after a
restart, exist (at zero) from the moment a Schedule is seen, so an alert's
``increase()`` sees the very first failure, and cost no memory between
scrapes, however many Schedules there are.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cronfleet.cadence import cadence_of
from cronfleet.clock import from_rfc3339
from cronfleet.cronschedule import CronError
from cronfleet.models import MissCause, Phase

logger = logging.getLogger(__name__)

Family = GaugeMetricFamily | CounterMetricFamily

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)

# A Schedule the operator has not reconciled yet has no phase in its status.
PENDING_PHASE = "Pending"
# status.counts keys that count finished runs, and the `result` label each gets:
# the same values as cronfleet_runs_total's, so one selector fits both.
RUN_RESULTS = {"succeeded": "Succeeded", "failed": "Failed", "cancelled": "Cancelled"}
# Exported at 0 even before the status has them, so the first run is an increase.
ALWAYS_EXPORTED_RESULTS = ("succeeded", "failed")
RUN_BLOCKED_CONDITION = "RunBlocked"
# Bad Schedules are logged once each; the bound keeps a flood of them from
# growing memory.
_LOGGED_LIMIT = 1000


class _Broken:
    """A cached computation that raised: counted as an error at every scrape."""


_BROKEN = _Broken()


@dataclass
class _Scrape:
    """The families of one scrape, and the per-Schedule failures met while filling them."""

    families: dict[str, Family]
    errors: int = 0
    failures: list[tuple[str, str, str, Exception]] = field(default_factory=list)


class ScheduleCollector(Collector):
    """Series derived from the Schedules' status, as kube-state-metrics would.

    One Schedule's bad data (an unparsable timestamp, an unknown time zone,
    a value of the wrong type) only drops that Schedule's affected series and
    counts in ``cronfleet_schedule_metric_errors_total``: /metrics keeps
    answering for the other Schedules.
    """

    def __init__(
        self,
        schedules: Callable[[], Iterable[Mapping[str, Any]]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self._schedules = schedules
        self._now = now
        # Only the elected leader exports these: with two replicas, the same
        # series from both would make every alert on them fire twice.
        self._leading = leading
        self._periods: dict[tuple[str, str, str], float | _Broken | None] = {}
        self._errors_total = 0
        self._logged: set[tuple[str, str, str]] = set()

    def period(self, cron: str | None, every: str | None, time_zone: str) -> float | None:
        """The longest wait between two runs, for "no success in N periods" alerts.

        Cached per cadence and zone: Schedules mostly share a few cadences,
        and a cron's walk is a few hundred steps.
        """
        key = (cron or "", every or "", time_zone)
        if key not in self._periods:
            try:
                self._periods[key] = self._compute_period(cron, every, time_zone)
            except Exception:
                self._periods[key] = _BROKEN
                raise
        cached = self._periods[key]
        if isinstance(cached, _Broken):
            raise ValueError(f"no period for {cron or every!r} in time zone {time_zone!r}")
        return cached

    def _compute_period(self, cron: str | None, every: str | None, time_zone: str) -> float | None:
        try:
            cadence = cadence_of(cron=cron, every=every, at=None, time_zone=time_zone)
        except CronError:
            # An Invalid Schedule: its status says why; it has no period.
            return None
        return cadence.period_seconds(self._now())

    def describe(self) -> Iterable[Metric]:
        # Without this the registry would call collect() at registration.
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        if not self._leading():
            return
        scrape = _Scrape(self._families())
        counts: dict[tuple[str, str], int] = {}
        for body in list(self._schedules()):
            self._add_schedule(scrape, body, counts)
        phases = [PENDING_PHASE, *(phase.value for phase in Phase)]
        phases += sorted({phase for _, phase in counts} - set(phases))
        by_phase = scrape.families["cronfleet_schedules"]
        for namespace in sorted({namespace for namespace, _ in counts}):
            for phase in phases:
                by_phase.add_metric([namespace, phase], counts.get((namespace, phase), 0))
        self._errors_total += scrape.errors
        for namespace, name, series, error in scrape.failures:
            self._log_once(namespace, name, series, error)
        scrape.families["cronfleet_schedule_metric_errors"].add_metric([], self._errors_total)
        yield from scrape.families.values()

    def _add_schedule(
        self, scrape: _Scrape, body: Mapping[str, Any], counts: dict[tuple[str, str], int]
    ) -> None:
        try:
            meta = body["metadata"]
            namespace, name = str(meta["namespace"]), str(meta["name"])
        except Exception as error:
            scrape.errors += 1
            scrape.failures.append(("?", "?", "metadata", error))
            return
        families = scrape.families
        labels = [namespace, name]
        status = _mapping(body.get("status"))
        spec = _mapping(body.get("spec"))
        phase = status.get("phase") or PENDING_PHASE
        phase = phase if isinstance(phase, str) else str(phase)
        counts[(namespace, phase)] = counts.get((namespace, phase), 0) + 1

        def add(series: str, compute: Callable[[], Iterator[tuple[list[str], float]]]) -> None:
            # Each series of each Schedule on its own: one bad field drops one series.
            try:
                samples = list(compute())
            except Exception as error:
                scrape.errors += 1
                scrape.failures.append((namespace, name, series, error))
                return
            for extra, value in samples:
                families[series].add_metric([*labels, *extra], value)

        def info() -> Iterator[tuple[list[str], float]]:
            task, cronjob = spec.get("task") or "", status.get("cronJob") or ""
            yield [phase, str(task), str(cronjob)], 1

        def timestamp(value: Any) -> Iterator[tuple[list[str], float]]:
            if value:
                yield [], from_rfc3339(str(value)).timestamp()

        def number(value: Any) -> Iterator[tuple[list[str], float]]:
            yield [], float(value or 0)

        def runs() -> Iterator[tuple[list[str], float]]:
            run_counts = _mapping(status.get("counts"))
            for key, result in RUN_RESULTS.items():
                if key in run_counts or key in ALWAYS_EXPORTED_RESULTS:
                    yield [result], float(run_counts.get(key) or 0)

        def missed() -> Iterator[tuple[list[str], float]]:
            yield [], float(_mapping(status.get("counts")).get("missed") or 0)

        def blocked() -> Iterator[tuple[list[str], float]]:
            conditions = status.get("conditions") or []
            yield (
                [],
                float(
                    any(
                        _mapping(condition).get("type") == RUN_BLOCKED_CONDITION
                        and _mapping(condition).get("status") == "True"
                        for condition in conditions
                    )
                ),
            )

        def period() -> Iterator[tuple[list[str], float]]:
            cron, every = spec.get("cron"), spec.get("every")
            seconds = self.period(
                str(cron) if cron else None,
                str(every) if every else None,
                str(spec.get("timeZone") or "UTC"),
            )
            if seconds:
                yield [], seconds

        add("cronfleet_schedule_info", info)
        add(
            "cronfleet_schedule_created_timestamp_seconds",
            lambda: timestamp(meta.get("creationTimestamp")),
        )
        add(
            "cronfleet_schedule_next_run_timestamp_seconds",
            lambda: timestamp(status.get("nextRunTime")),
        )
        add(
            "cronfleet_schedule_last_success_timestamp_seconds",
            lambda: timestamp(status.get("lastSuccessfulTime")),
        )
        add("cronfleet_schedule_period_seconds", period)
        add("cronfleet_schedule_retry_count", lambda: number(status.get("retryCount")))
        add(
            "cronfleet_schedule_consecutive_failures",
            lambda: number(status.get("consecutiveFailures")),
        )
        add("cronfleet_schedule_runs", runs)
        add("cronfleet_schedule_missed_runs", missed)
        add("cronfleet_schedule_run_blocked", blocked)

    def _log_once(self, namespace: str, name: str, series: str, error: Exception) -> None:
        key = (namespace, name, series)
        if key in self._logged or len(self._logged) >= _LOGGED_LIMIT:
            return
        self._logged.add(key)
        logger.warning(
            "Schedule %s/%s: %s is left out of /metrics: %s: %s",
            namespace,
            name,
            series,
            type(error).__name__,
            error,
        )

    @staticmethod
    def _families() -> dict[str, Family]:
        schedule = ["namespace", "schedule"]
        families: list[Family] = [
            GaugeMetricFamily(
                "cronfleet_schedules",
                "Schedules by namespace and phase (Pending: not reconciled yet).",
                labels=["namespace", "phase"],
            ),
            GaugeMetricFamily(
                "cronfleet_schedule_info",
                "One series per Schedule with its phase, task and CronJob.",
                labels=[*schedule, "phase", "task", "cronjob"],
            ),
            GaugeMetricFamily(
                "cronfleet_schedule_created_timestamp_seconds",
                "When the Schedule was created (Unix time).",
                labels=schedule,
            ),
            GaugeMetricFamily(
                "cronfleet_schedule_next_run_timestamp_seconds",
                "When the Schedule runs next (Unix time).",
                labels=schedule,
            ),
            GaugeMetricFamily(
                "cronfleet_schedule_last_success_timestamp_seconds",
                "When a run of the Schedule last succeeded (Unix time).",
                labels=schedule,
            ),
            GaugeMetricFamily(
                "cronfleet_schedule_period_seconds",
                "The longest time between two scheduled runs of the Schedule, over the next year.",
                labels=schedule,
            ),
            GaugeMetricFamily(
                "cronfleet_schedule_retry_count",
                "Retries of the Schedule's current failing run.",
                labels=schedule,
            ),
            GaugeMetricFamily(
                "cronfleet_schedule_consecutive_failures",
                "Failed runs of the Schedule since its last success.",
                labels=schedule,
            ),
            CounterMetricFamily(
                "cronfleet_schedule_runs",
                "Finished runs of the Schedule by result, from status.counts "
                "(kept across operator restarts).",
                labels=[*schedule, "result"],
            ),
            CounterMetricFamily(
                "cronfleet_schedule_missed_runs",
                "Scheduled times of the Schedule that passed without a run, from status.counts.",
                labels=schedule,
            ),
            GaugeMetricFamily(
                "cronfleet_schedule_run_blocked",
                "1 while a run of the Schedule cannot start (condition RunBlocked), else 0.",
                labels=schedule,
            ),
            CounterMetricFamily(
                "cronfleet_schedule_metric_errors",
                "Per-Schedule series left out of scrapes because the Schedule's data "
                "could not be read (the operator's log names the Schedule).",
            ),
        ]
        return {family.name: family for family in families}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class Metrics:
    def __init__(
        self,
        schedules: Callable[[], Iterable[Mapping[str, Any]]],
        registry: CollectorRegistry | None = None,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.leader = Gauge(
            "cronfleet_operator_leader",
            "1 on the replica that acts (the elected leader, or the only replica), 0 on a standby.",
            registry=self.registry,
        )
        self.leader.set_function(lambda: float(leading()))
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
        self.runs_started = Counter(
            "cronfleet_operator_runs_started_total",
            "Jobs the operator created itself, by trigger (all but the CronJob's own runs).",
            ["namespace", "schedule", "trigger"],
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
        self.api_writes = Counter(
            "cronfleet_api_writes_total",
            "Of those, the writes (every method but GET): a restart should send none.",
            registry=self.registry,
        )
        self.reconciled = Gauge(
            "cronfleet_schedules_reconciled",
            "Known Schedules judged at least once since the operator started: equal to "
            "the number of Schedules once a restart has looked at every one.",
            registry=self.registry,
        )
        self.registry.register(ScheduleCollector(schedules, leading=leading))
        # The label sets each Schedule's series were created with, so that they
        # go with the Schedule instead of staying until the operator restarts.
        self._series: dict[tuple[str, str], set[tuple[Counter | Histogram, tuple[str, ...]]]] = {}

    def of(self, metric: Counter | Histogram, namespace: str, schedule: str, *labels: str) -> Any:
        """``metric.labels(namespace, schedule, *labels)``, remembered for :meth:`forget`."""
        values = (namespace, schedule, *labels)
        self._series.setdefault((namespace, schedule), set()).add((metric, values))
        return metric.labels(*values)

    def forget(self, namespace: str, schedule: str) -> None:
        """Drop the series of a deleted Schedule."""
        for metric, values in self._series.pop((namespace, schedule), set()):
            with contextlib.suppress(KeyError):
                metric.remove(*values)

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)


def miss_reason_label(cause: str) -> str:
    """A bounded label value for a missed run's cause (MissedRun.cause)."""
    return "concurrency_forbid" if cause == MissCause.CONCURRENCY_FORBID else "not_started"
