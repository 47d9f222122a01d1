"""Cron expressions: validation, next fire time and a description in words.

The CronJob controller evaluates schedules with robfig/cron's standard parser
and its ``Next`` walk in the CronJob's time zone. To report a ``nextRunTime``
that matches when the controller really fires, the fields are expanded with
croniter and the next time is found with the same walk: whole months, days
and hours are stepped in *absolute* time, so across daylight-saving changes
a wall-clock time that does not exist (the spring-forward gap) is skipped
and one that exists twice (the fall-back hour) fires twice, as in the
controller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import ExpressionDescriptor, Options  # type: ignore[import-untyped]
from croniter import croniter

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
FIELD_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
# What robfig/cron's standard parser accepts: numbers, names, *, ?, ranges, steps, lists.
_FIELD_SYNTAX = re.compile(r"^[0-9A-Za-z*?/,-]+$")
_NUMBER = re.compile(r"\d+")
_YEARS_AHEAD = 5


class CronError(ValueError):
    """The expression is not one the CronJob controller accepts; the message says why."""


@dataclass(frozen=True)
class CronSpec:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_star: bool
    weekdays_star: bool

    def day_matches(self, moment: datetime) -> bool:
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        # Standard cron: if either day field is unrestricted both must match,
        # otherwise matching either is enough.
        if self.days_star or self.weekdays_star:
            return day_ok and weekday_ok
        return day_ok or weekday_ok


def parse(expression: str) -> CronSpec:
    """Parse a 5-field expression or macro, with the controller's rules."""
    text = expression.strip()
    standard = MACROS.get(text.lower(), text) if text.startswith("@") else text
    if standard.startswith("@"):
        allowed = ", ".join(MACROS)
        raise CronError(f"unknown macro {text!r}; allowed: {allowed}")
    fields = standard.split()
    if len(fields) != 5:
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    for name, field, (low, high) in zip(FIELD_NAMES, fields, FIELD_BOUNDS, strict=True):
        if not _FIELD_SYNTAX.match(field):
            raise CronError(f"{name} field {field!r} has characters cron does not allow")
        if any(token in field.upper() for token in ("L", "W", "#")) and not _has_names(field):
            raise CronError(f"{name} field {field!r}: L, W and # are not supported by CronJobs")
        for number in _NUMBER.findall(field.split("/")[0]):
            if not low <= int(number) <= high:
                raise CronError(f"{name} field {field!r}: {number} is outside {low}-{high}")
    try:
        expanded, _ = croniter.expand(" ".join(fields).replace("?", "*"))
    except Exception as error:  # croniter reports bad fields with its own exception types
        raise CronError(_culprit(fields) or str(error)) from error
    minutes, hours, days, months, weekdays = (
        _as_set(values, bounds) for values, bounds in zip(expanded[:5], FIELD_BOUNDS, strict=True)
    )
    return CronSpec(
        expression=text,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=frozenset(day % 7 for day in weekdays),
        days_star=fields[2] in ("*", "?"),
        weekdays_star=fields[4] in ("*", "?"),
    )


def _culprit(fields: list[str]) -> str | None:
    """Name the field croniter refused, by expanding each one alone."""
    for index, (name, field) in enumerate(zip(FIELD_NAMES, fields, strict=True)):
        alone = ["*"] * 5
        alone[index] = field.replace("?", "*")
        try:
            croniter.expand(" ".join(alone))
        except Exception:
            return f"{name} field {field!r} is not a number, name, range, step or list cron allows"
    return None


def _has_names(field: str) -> bool:
    return bool(re.search(r"[A-Za-z]{3}", field))


def _as_set(values: list[int | str], bounds: tuple[int, int]) -> frozenset[int]:
    if "*" in values:  # croniter keeps an unrestricted field as "*"
        return frozenset(range(bounds[0], bounds[1] + 1))
    return frozenset(int(value) for value in values)


def zone(name: str) -> ZoneInfo:
    if name == "Local" or name.startswith(("/", ".")):
        raise CronError(f"time zone {name!r} is not an IANA name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise CronError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from error


def next_fire_time(spec: CronSpec, after: datetime, time_zone: ZoneInfo) -> datetime | None:
    """The first fire time strictly after ``after`` (aware), in UTC; None within five years."""
    # Aware arithmetic in Python is wall-clock arithmetic and drops `fold`,
    # which would step back into the first of two repeated hours: add elapsed
    # time in UTC instead, as Go does.
    moment = _add_absolute(after.replace(microsecond=0), timedelta(seconds=1), time_zone)
    # Fire times are whole minutes: round the start up to the next minute.
    if moment.second:
        moment = _add_absolute(moment, timedelta(seconds=60 - moment.second), time_zone)
    year_limit = moment.year + _YEARS_AHEAD
    moved = False

    def local(year: int, month: int, day: int, hour: int = 0) -> datetime:
        return datetime(year, month, day, hour, tzinfo=time_zone)

    while moment.year <= year_limit:
        if moment.month not in spec.months:
            if not moved:
                moved = True
                moment = local(moment.year, moment.month, 1)
            month = moment.month + 1
            moment = local(moment.year + (month > 12), (month - 1) % 12 + 1, 1)
            continue
        if not spec.day_matches(moment):
            if not moved:
                moved = True
                moment = local(moment.year, moment.month, moment.day)
            tomorrow = moment.date() + timedelta(days=1)
            moment = local(tomorrow.year, tomorrow.month, tomorrow.day)
            continue
        if moment.hour not in spec.hours:
            if not moved:
                moved = True
                moment = moment.replace(minute=0, second=0)
            moment = _add_absolute(moment, timedelta(hours=1), time_zone)
            continue
        if moment.minute not in spec.minutes:
            if not moved:
                moved = True
                moment = moment.replace(second=0)
            moment = _add_absolute(moment, timedelta(minutes=1), time_zone)
            continue
        # In UTC: a local time in a repeated hour only differs by `fold`,
        # which Python's same-zone arithmetic and comparisons ignore.
        return moment.astimezone(ZoneInfo("UTC"))
    return None


def _add_absolute(moment: datetime, delta: timedelta, time_zone: ZoneInfo) -> datetime:
    """Add elapsed time (not wall-clock time), as Go's time.Add does."""
    return (moment.astimezone(ZoneInfo("UTC")) + delta).astimezone(time_zone)


def describe(expression: str, time_zone: str) -> str:
    """The expression in words with its zone, e.g. 'At 02:00 (Asia/Kolkata)'."""
    text = expression.strip()
    standard = MACROS.get(text.lower(), text)
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        words = ExpressionDescriptor(standard.replace("?", "*"), options).get_description()
    except Exception:  # the descriptor is stricter than cron on some forms
        words = standard
    return f"{words} ({time_zone})"
