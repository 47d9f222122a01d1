"""Next fire times as the CronJob controller computes them, across DST and macros."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronfleet.cronschedule import (
    CronError,
    CronSpec,
    Interval,
    describe,
    next_fire_time,
    parse,
    zone,
)

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")
SYDNEY = ZoneInfo("Australia/Sydney")
ZONES = [NEW_YORK, BERLIN, KOLKATA, SYDNEY, ZoneInfo("UTC"), ZoneInfo("America/Santiago")]


def fires(expression: str, start: datetime, tz: ZoneInfo, count: int) -> list[datetime]:
    spec, out, moment = parse(expression), [], start
    for _ in range(count):
        found = next_fire_time(spec, moment, tz)
        assert found is not None
        out.append(found)
        moment = found
    return out


def test_daily_in_kolkata_is_the_evening_before_in_utc() -> None:
    start = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    first = fires("0 2 * * *", start, KOLKATA, 1)[0]
    assert first.astimezone(UTC) == datetime(2026, 11, 24, 20, 30, tzinfo=UTC)


def test_spring_forward_gap_is_skipped_like_the_controller() -> None:
    start = datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK)
    days = [m.astimezone(NEW_YORK).day for m in fires("30 2 * * *", start, NEW_YORK, 2)]
    assert days == [9, 10]  # 02:30 does not exist on 8 March 2026


def test_fall_back_hour_fires_twice_like_the_controller() -> None:
    start = datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK)
    runs = fires("30 1 * * *", start, NEW_YORK, 3)
    assert [r.astimezone(UTC).hour for r in runs] == [5, 6, 6]  # EDT, EST, EST
    assert runs[1] - runs[0] == timedelta(hours=1)


def test_hourly_across_berlin_fall_back_has_25_runs_that_day() -> None:
    start = datetime(2026, 10, 24, 23, 59, tzinfo=BERLIN)
    runs = fires("0 * * * *", start, BERLIN, 30)
    on_the_day = [r for r in runs if r.astimezone(BERLIN).date().day == 25]
    assert len(on_the_day) == 25


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@hourly", datetime(2026, 11, 24, 9, 0, tzinfo=UTC)),
        ("@daily", datetime(2026, 11, 25, 0, 0, tzinfo=UTC)),
        ("@midnight", datetime(2026, 11, 25, 0, 0, tzinfo=UTC)),
        ("@weekly", datetime(2026, 11, 29, 0, 0, tzinfo=UTC)),
        ("@monthly", datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
        ("@yearly", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        ("@annually", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_macros(macro: str, expected: datetime) -> None:
    start = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    assert fires(macro, start, ZoneInfo("UTC"), 1)[0] == expected


def test_day_of_month_or_day_of_week_when_both_are_set() -> None:
    start = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday
    days = [r.day for r in fires("0 9 1 * MON", start, ZoneInfo("UTC"), 3)]
    assert days == [30, 1, 7]  # Monday 30th, the 1st, Monday 7th


def test_impossible_date_has_no_next_run() -> None:
    start = datetime(2026, 11, 24, tzinfo=UTC)
    assert next_fire_time(parse("0 0 31 2 *"), start, ZoneInfo("UTC")) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "61 is outside 0-59"),
        ("0 24 * * *", "24 is outside 0-23"),
        ("0 0 0 * *", "0 is outside 1-31"),
        ("0 0 * 13 *", "13 is outside 1-12"),
        ("0 0 * * 7", "7 is outside 0-6"),
        ("0 0 * *", "expected 5 fields"),
        ("0 0 0 * * *", "expected 5 fields"),
        ("0 0 L * *", "L, W and # are not supported"),
        ("@fortnightly", "unknown macro"),
        ("@Daily", "unknown macro"),  # robfig's macros are case-sensitive
        ("@every 5 minutes", "'5 minutes' is not a duration"),
        ("@every", "unknown macro"),
        ("*/0 * * * *", "the step must be at least 1"),
        ("5-1 * * * *", "range '5-1' is reversed"),
        ("CRON_TZ=UTC 0 * * * *", "set spec.timeZone"),
        ("", "empty"),
        ("0 0 * * MONDAY", "day-of-week field 'MONDAY'"),
        ("0 0 * JANUARY *", "month field"),
    ],
)
def test_invalid_expressions(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse(expression)


def test_unknown_and_local_time_zones_are_refused() -> None:
    with pytest.raises(CronError, match="unknown time zone"):
        zone("Mars/Olympus_Mons")
    with pytest.raises(CronError, match="not an IANA name"):
        zone("Local")


@pytest.mark.parametrize("name", ["America", "Europe", "America/Argentina", "Etc"])
def test_a_directory_of_zones_is_refused_with_its_name(name: str) -> None:
    # ZoneInfo raises IsADirectoryError (an OSError) for these.
    with pytest.raises(CronError, match=f"unknown time zone '{name}'"):
        zone(name)


@pytest.mark.parametrize(
    "name", ["", "America/-Sao_Paulo", "Europe/../Berlin", "America/Argentina_Buenos_Aires"]
)
def test_zone_names_the_cronjob_api_refuses(name: str) -> None:
    with pytest.raises(CronError, match="time zone"):
        zone(name)


def test_every_counts_from_its_anchor() -> None:
    every = parse("@every 90m")
    assert every == Interval("@every 90m", 5400)
    anchor = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)
    after = datetime(2026, 11, 24, 10, 59, 59, 500000, tzinfo=UTC)
    assert next_fire_time(every, after, ZoneInfo("UTC"), anchor) == datetime(
        2026, 11, 24, 11, 0, tzinfo=UTC
    )
    # Before the anchor the first fire time is one interval after it.
    early = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    assert next_fire_time(every, early, ZoneInfo("UTC"), anchor) == anchor + timedelta(minutes=90)
    # Without an anchor it counts from `after`, as robfig's Next does.
    assert next_fire_time(every, after, ZoneInfo("UTC")) == datetime(
        2026, 11, 24, 12, 29, 59, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("@every 1h30m", 5400),
        ("@every 1.5h", 5400),
        ("@every 2500ms", 2),  # cut to whole seconds
        ("@every 10us", 1),  # at least a second
        ("@every 0", 1),
        ("@every -5m", 1),
        ("@every .5m", 30),
    ],
)
def test_every_durations_as_robfig_reads_them(expression: str, seconds: int) -> None:
    assert parse(expression) == Interval(expression, seconds)
    assert describe("@every 1h30m", "UTC") == "Every 1h30m (UTC)"


def test_description_names_the_zone() -> None:
    assert describe("0 2 * * *", "Asia/Kolkata") == "At 02:00 (Asia/Kolkata)"
    assert describe("*/10 * * * *", "UTC") == "Every 10 minutes (UTC)"
    assert describe("@hourly", "UTC") == "Every hour (UTC)"


minute_fields = st.sampled_from(["*", "0", "30", "*/10", "5,35", "0-10/5"])
hour_fields = st.sampled_from(["*", "0", "1", "2", "3", "*/6", "9-17", "1,2,3"])
day_fields = st.sampled_from(["*", "1", "15", "28", "1-7"])
month_fields = st.sampled_from(["*", "1", "3", "10", "11", "*/3"])
weekday_fields = st.sampled_from(["*", "0", "1-5", "SAT,SUN", "MON"])
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    minute_fields,
    hour_fields,
    day_fields,
    month_fields,
    weekday_fields,
    st.sampled_from(ZONES),
    instants,
)
def test_next_fire_time_is_a_matching_future_minute(
    minute: str, hour: str, day: str, month: str, weekday: str, tz: ZoneInfo, now: datetime
) -> None:
    spec = parse(f"{minute} {hour} {day} {month} {weekday}")
    assert isinstance(spec, CronSpec)
    found = next_fire_time(spec, now, tz)
    if found is None:
        return
    local = found.astimezone(tz)
    assert found > now
    assert found.second == 0 and found.microsecond == 0
    assert local.minute in spec.minutes and local.hour in spec.hours
    assert local.month in spec.months and spec.day_matches(local)
    # Nothing matches in between: no fire time is skipped, except wall-clock
    # times that do not exist (the controller skips those too).
    probe = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    while probe < found and (found - probe) < timedelta(days=2):
        candidate = probe.astimezone(tz)
        exists = candidate.replace(tzinfo=None) == (
            candidate.replace(tzinfo=None)
            .replace(tzinfo=tz)
            .astimezone(UTC)
            .astimezone(tz)
            .replace(tzinfo=None)
        )
        matches = (
            candidate.minute in spec.minutes
            and candidate.hour in spec.hours
            and candidate.month in spec.months
            and spec.day_matches(candidate)
        )
        assert not (matches and exists and probe > now), f"{probe} matches before {found}"
        probe += timedelta(minutes=1)
