"""/metrics: the per-Schedule series read from status, and that one bad Schedule
never breaks a scrape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cronfleet.cadence import longest_cron_gap
from cronfleet.cronschedule import CronSpec, parse
from cronfleet.metrics import Metrics, ScheduleCollector

THURSDAY = datetime(2026, 11, 26, 12, tzinfo=UTC)
DAY = 86400.0


def schedule(
    name: str,
    namespace: str = "team-a",
    spec: dict[str, Any] | None = None,
    status: Any = None,
    created: Any = "2026-11-20T08:00:00Z",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {"cron": "0 2 * * *", "task": "http", **(spec or {})},
    }
    if status is not None:
        body["status"] = status
    return body


def scrape(*schedules: dict[str, Any]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of one scrape, by name and labels, as Prometheus would read the text."""
    metrics = Metrics(lambda: list(schedules))
    return samples_of(generate_latest(metrics.registry).decode())


def samples_of(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_new_schedule_exports_zero_counters_and_pending_phase() -> None:
    samples = scrape(schedule("fresh"))
    who = {"namespace": "team-a", "schedule": "fresh"}
    assert value(samples, "cronfleet_schedule_runs_total", **who, result="Succeeded") == 0
    assert value(samples, "cronfleet_schedule_runs_total", **who, result="Failed") == 0
    # Not in the status yet: absent rather than a guess.
    assert value(samples, "cronfleet_schedule_runs_total", **who, result="Cancelled") is None
    assert value(samples, "cronfleet_schedule_missed_runs_total", **who) == 0
    assert value(samples, "cronfleet_schedule_run_blocked", **who) == 0
    assert value(samples, "cronfleet_schedule_created_timestamp_seconds", **who) == (
        datetime(2026, 11, 20, 8, tzinfo=UTC).timestamp()
    )
    assert value(samples, "cronfleet_schedules", namespace="team-a", phase="Pending") == 1
    assert value(samples, "cronfleet_schedules", namespace="team-a", phase="Active") == 0
    assert (
        value(samples, "cronfleet_schedule_info", **who, phase="Pending", task="http", cronjob="")
        == 1
    )
    assert value(samples, "cronfleet_schedule_period_seconds", **who) == DAY
    assert value(samples, "cronfleet_schedule_metric_errors_total") == 0


def test_series_follow_the_status() -> None:
    status = {
        "phase": "Active",
        "cronJob": "nightly",
        "nextRunTime": "2026-11-27T02:00:00Z",
        "lastSuccessfulTime": "2026-11-26T02:00:07Z",
        "retryCount": 1,
        "consecutiveFailures": 2,
        "counts": {"succeeded": 41, "failed": 2, "cancelled": 1, "missed": 3},
        "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "RunBlocked", "status": "True", "reason": "CreateContainerConfigError"},
        ],
    }
    samples = scrape(schedule("nightly", status=status))
    who = {"namespace": "team-a", "schedule": "nightly"}
    assert value(samples, "cronfleet_schedule_runs_total", **who, result="Succeeded") == 41
    assert value(samples, "cronfleet_schedule_runs_total", **who, result="Failed") == 2
    assert value(samples, "cronfleet_schedule_runs_total", **who, result="Cancelled") == 1
    assert value(samples, "cronfleet_schedule_missed_runs_total", **who) == 3
    assert value(samples, "cronfleet_schedule_run_blocked", **who) == 1
    assert value(samples, "cronfleet_schedule_retry_count", **who) == 1
    assert value(samples, "cronfleet_schedule_consecutive_failures", **who) == 2
    assert value(samples, "cronfleet_schedule_next_run_timestamp_seconds", **who) == (
        datetime(2026, 11, 27, 2, tzinfo=UTC).timestamp()
    )
    assert value(samples, "cronfleet_schedules", namespace="team-a", phase="Active") == 1
    assert value(samples, "cronfleet_schedules", namespace="team-a", phase="Pending") == 0


def test_run_blocked_is_zero_once_the_condition_is_false() -> None:
    status = {"phase": "Active", "conditions": [{"type": "RunBlocked", "status": "False"}]}
    samples = scrape(schedule("unblocked", status=status))
    assert (
        value(samples, "cronfleet_schedule_run_blocked", namespace="team-a", schedule="unblocked")
        == 0
    )


BAD_SCHEDULES = [
    pytest.param(schedule("zone", spec={"timeZone": "America"}), id="time zone is a directory"),
    pytest.param(schedule("zone2", spec={"timeZone": "Mars/Olympus"}), id="unknown time zone"),
    pytest.param(schedule("created", created="yesterday"), id="unparsable creationTimestamp"),
    pytest.param(
        schedule(
            "times", status={"phase": "Active", "nextRunTime": "soon", "lastSuccessfulTime": 7}
        ),
        id="unparsable status times",
    ),
    pytest.param(
        schedule(
            "types",
            status={
                "phase": ["Active"],
                "retryCount": "many",
                "consecutiveFailures": {"n": 1},
                "counts": {"succeeded": "lots", "failed": None, "missed": [1]},
                "conditions": "RunBlocked",
            },
        ),
        id="garbage types",
    ),
    pytest.param(schedule("status", status=["not", "a", "mapping"]), id="status is a list"),
    pytest.param(schedule("every", spec={"cron": "@every forever"}), id="bad @every"),
    pytest.param(schedule("interval", spec={"cron": None, "every": ["2h"]}), id="bad every"),
    pytest.param(schedule("cron", spec={"cron": {"minute": 5}}), id="cron is a mapping"),
    pytest.param({"metadata": {"name": "nameless"}}, id="no namespace"),
]


@pytest.mark.parametrize("bad", BAD_SCHEDULES)
def test_a_bad_schedule_never_breaks_the_scrape(bad: dict[str, Any]) -> None:
    good = schedule("good", "team-b", status={"phase": "Active", "counts": {"failed": 1}})
    samples = scrape(bad, good)
    who = {"namespace": "team-b", "schedule": "good"}
    assert value(samples, "cronfleet_schedule_runs_total", **who, result="Failed") == 1
    assert value(samples, "cronfleet_schedule_period_seconds", **who) == DAY
    assert value(samples, "cronfleet_schedules", namespace="team-b", phase="Active") == 1


def test_bad_fields_drop_only_their_own_series_and_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = schedule(
        "half",
        spec={"timeZone": "America"},
        status={
            "phase": "Active",
            "nextRunTime": "soon",
            "lastSuccessfulTime": 7,
            "counts": {"failed": 4},
        },
    )
    metrics = Metrics(lambda: [bad])
    for _ in range(2):
        text = generate_latest(metrics.registry).decode()
    samples = samples_of(text)
    who = {"namespace": "team-a", "schedule": "half"}
    assert value(samples, "cronfleet_schedule_next_run_timestamp_seconds", **who) is None
    assert value(samples, "cronfleet_schedule_last_success_timestamp_seconds", **who) is None
    # A directory of zones is no zone: an Invalid Schedule, which has no period.
    assert value(samples, "cronfleet_schedule_period_seconds", **who) is None
    assert value(samples, "cronfleet_schedule_runs_total", **who, result="Failed") == 4
    assert value(samples, "cronfleet_schedule_created_timestamp_seconds", **who) is not None
    # Two series left out, at each of two scrapes; each logged once.
    assert value(samples, "cronfleet_schedule_metric_errors_total") == 4
    logged = [record.getMessage() for record in caplog.records]
    assert len(logged) == 2 and all("team-a/half" in line for line in logged)


def test_a_period_that_cannot_be_computed_is_counted_at_every_scrape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cronfleet.cadence as module  # noqa: PLC0415

    def broken(*_: Any) -> float | None:
        raise RuntimeError("the time zone database is unreadable")

    monkeypatch.setattr(module, "longest_cron_gap", broken)
    metrics = Metrics(lambda: [schedule("odd"), schedule("also-odd")])
    for _ in range(3):
        text = generate_latest(metrics.registry).decode()
    samples = samples_of(text)
    assert (
        value(samples, "cronfleet_schedule_period_seconds", namespace="team-a", schedule="odd")
        is None
    )
    assert value(samples, "cronfleet_schedule_metric_errors_total") == 6
    assert (
        value(
            samples,
            "cronfleet_schedule_runs_total",
            namespace="team-a",
            schedule="odd",
            result="Failed",
        )
        == 0
    )


def test_invalid_cron_has_no_period_and_is_no_error() -> None:
    samples = scrape(schedule("invalid", spec={"cron": "61 * * * *"}, status={"phase": "Invalid"}))
    assert (
        value(samples, "cronfleet_schedule_period_seconds", namespace="team-a", schedule="invalid")
        is None
    )
    assert value(samples, "cronfleet_schedule_metric_errors_total") == 0


@pytest.mark.parametrize(
    ("expression", "zone", "days"),
    [
        # Measured on a Thursday, the next gap is one day; the weekend is three.
        ("0 9 * * 1-5", "UTC", 3),
        # Months without a 31st: 31 August to 31 October.
        ("0 0 31 * *", "UTC", 61),
        ("0 2 * * *", "UTC", 1),
        ("*/15 * * * *", "UTC", 15 / (24 * 60)),
        ("* * * * *", "UTC", 1 / (24 * 60)),
        # The weekend that ends daylight saving time is an hour longer.
        ("0 9 * * 1-5", "Europe/Berlin", 3 + 1 / 24),
        # 02:30 does not exist the day clocks spring forward: that day is skipped.
        ("30 2 * * *", "Europe/Berlin", 2 - 1 / 24),
        # Once in four years, though the window is one year.
        ("0 0 29 2 *", "UTC", 4 * 365 + 1),
    ],
)
def test_period_is_the_longest_gap(expression: str, zone: str, days: float) -> None:
    gap = longest_cron_gap(cron(expression), ZoneInfo(zone), THURSDAY)
    assert gap == pytest.approx(days * DAY)


def test_period_is_the_longest_gap_whatever_day_it_is_measured() -> None:
    for offset in range(7):
        start = THURSDAY + timedelta(days=offset)
        assert longest_cron_gap(cron("0 9 * * 1-5"), ZoneInfo("UTC"), start) == 3 * DAY


def test_period_of_every_and_interval_schedules() -> None:
    collector = ScheduleCollector(list, now=lambda: THURSDAY)
    assert collector.period("@every 90m", None, "UTC") == 5400
    assert collector.period(None, "1h30m", "Europe/Berlin") == 5400
    samples = scrape(
        schedule("every", spec={"cron": "@every 45s"}),
        schedule("interval", spec={"cron": None, "every": "2h"}),
    )
    assert (
        value(samples, "cronfleet_schedule_period_seconds", namespace="team-a", schedule="every")
        == 45
    )
    assert (
        value(samples, "cronfleet_schedule_period_seconds", namespace="team-a", schedule="interval")
        == 7200
    )


def test_period_is_cached_per_expression_and_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    import cronfleet.cadence as module  # noqa: PLC0415

    real = module.longest_cron_gap

    def counting(*args: Any, **kwargs: Any) -> float | None:
        calls.append(args[0].expression)
        gap: float | None = real(*args, **kwargs)
        return gap

    monkeypatch.setattr(module, "longest_cron_gap", counting)
    collector = ScheduleCollector(list, now=lambda: THURSDAY)
    for _ in range(3):
        assert collector.period("0 9 * * 1-5", None, "UTC") == 3 * DAY
    collector.period("0 9 * * 1-5", None, "Europe/Berlin")
    assert calls == ["0 9 * * 1-5", "0 9 * * 1-5"]


def cron(expression: str) -> CronSpec:
    spec = parse(expression)
    assert isinstance(spec, CronSpec)
    return spec


def test_the_series_of_a_deleted_schedule_go_with_it() -> None:
    metrics = Metrics(list)
    metrics.of(metrics.runs, "team-a", "gone", "Scheduled", "Failed").inc()
    metrics.of(metrics.run_duration, "team-a", "gone").observe(3)
    metrics.of(metrics.runs, "team-a", "kept", "Scheduled", "Succeeded").inc()
    metrics.forget("team-a", "gone")
    text = generate_latest(metrics.registry).decode()
    assert 'schedule="gone"' not in text
    assert 'cronfleet_runs_total{namespace="team-a",result="Succeeded",schedule="kept"' in text
    metrics.forget("team-a", "never-seen")  # nothing to drop: no error
