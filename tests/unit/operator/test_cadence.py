"""The one Cadence type: next fire times, windows, descriptions, for every kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cronfleet.cadence import CadenceKind, cadence_of, parse_every
from cronfleet.cronschedule import CronError

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_every_counts_from_start_time_which_fires_itself() -> None:
    cadence = cadence_of(cron=None, every="90m", at=None, time_zone="Europe/Berlin", start=T0)
    assert cadence.kind is CadenceKind.EVERY and not cadence.native
    assert cadence.next_after(T0 - timedelta(hours=5)) == T0
    assert cadence.next_after(T0) == T0 + timedelta(minutes=90)
    assert cadence.next_after(T0 + timedelta(minutes=91)) == T0 + timedelta(minutes=180)
    assert cadence.describe() == "Every 1h30m, from 2026-11-24 10:00 (Europe/Berlin)"
    assert cadence.period_seconds() == 5400


def test_every_without_start_counts_from_creation_plus_one_interval() -> None:
    cadence = cadence_of(cron=None, every="10m", at=None, time_zone="UTC", created=T0)
    assert cadence.next_after(T0) == T0 + timedelta(minutes=10)
    times = cadence.fire_times(T0, T0 + timedelta(minutes=35))
    assert times == [T0 + timedelta(minutes=m) for m in (10, 20, 30)]


def test_every_is_absolute_time_across_daylight_saving() -> None:
    # Europe/Berlin falls back on 2026-10-25 at 03:00 local: 6h stays 6h.
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    cadence = cadence_of(cron=None, every="6h", at=None, time_zone="Europe/Berlin", start=start)
    assert cadence.fire_times(start, start + timedelta(hours=13)) == [
        start + timedelta(hours=6),
        start + timedelta(hours=12),
    ]


def test_at_fires_once_and_end_time_closes_the_window() -> None:
    at = cadence_of(cron=None, every=None, at=T0, time_zone="UTC")
    assert at.next_after(T0 - timedelta(seconds=1)) == T0 and at.next_after(T0) is None
    assert at.describe() == "Once at 2026-11-24 09:00 (UTC)"
    window = cadence_of(
        cron="0 * * * *",
        every=None,
        at=None,
        time_zone="UTC",
        start=T0,
        end=T0 + timedelta(hours=2),
    )
    assert window.fire_times(T0 - timedelta(days=1), T0 + timedelta(days=1)) == [
        T0,
        T0 + timedelta(hours=1),
    ]


def test_manual_only_and_cron_at_every_alias() -> None:
    manual = cadence_of(cron=None, every=None, at=None, time_zone="UTC")
    assert manual.kind is CadenceKind.MANUAL and manual.next_after(T0) is None
    assert manual.describe() == "Only when run manually"
    alias = cadence_of(cron="@every 90m", every=None, at=None, time_zone="UTC", created=T0)
    assert alias.kind is CadenceKind.EVERY and alias.next_after(T0) == T0 + timedelta(minutes=90)
    assert cadence_of(cron="0 2 * * *", every=None, at=None, time_zone="UTC").native


@pytest.mark.parametrize("text", ["", "5s", "90", "1d", "1h 30m", "m"])
def test_bad_intervals_are_refused(text: str) -> None:
    with pytest.raises(CronError):
        parse_every(text)


def test_two_cadences_at_once_are_refused() -> None:
    with pytest.raises(CronError, match="at most one cadence"):
        cadence_of(cron="0 * * * *", every="1h", at=None, time_zone="UTC")


def test_every_kind_answers_its_period_for_missed_run_alerts() -> None:
    def period(**given: str | datetime | None) -> float | None:
        fields: dict[str, str | datetime | None] = {"cron": None, "every": None, "at": None}
        cadence = cadence_of(**{**fields, **given}, time_zone="UTC")  # type: ignore[arg-type]
        return cadence.period_seconds(T0)

    # T0 is a Tuesday: the longest gap of a weekday cron is still the weekend.
    assert period(cron="0 9 * * 1-5") == 3 * 86400
    assert period(cron="@every 45s") == 45
    assert period(every="2h") == 7200
    assert period(at=T0) is None
    assert period() is None
