"""Cron expressions as a CronJob reads them: validation, fire times, words.

The Kubernetes API validates a CronJob's schedule with robfig/cron v3's
standard parser (``cron.ParseStandard``) and refuses any schedule containing
``TZ``; the CronJob controller computes fire times with robfig's ``Next`` in
the CronJob's time zone. This module mirrors both, quirks included, so that
what cronfleet accepts, and the ``nextRunTime`` it reports, are what the
cluster will do. ``tests/unit/operator/test_cron_parity.py`` checks that
against the library itself (``hack/cronoracle``).

robfig quirks kept on purpose (each one is the CronJob's behaviour):

- ``?`` means ``*`` in every field, not only the day fields.
- In a range item, anything after ``*-`` is ignored: ``*-5`` is ``*``.
- Numbers are Go ``strconv.Atoi``: ``+5`` and ``05`` are 5.
- A list drops empty items: ``1,,2`` is ``1,2``; a field of only commas
  matches nothing, so the schedule never fires.
- ``N/step`` means ``N-max/step``; a step larger than the range is allowed.
- A field keeps its "unrestricted" mark (which decides whether day-of-month
  and day-of-week are AND-ed or OR-ed) for ``*`` and ``*/1``, not ``*/2``.
- Macros are case-sensitive and must be the whole string: ``@Daily`` and
  ``@daily `` are refused.
- ``@every <d>`` takes Go's ``time.ParseDuration`` syntax; the interval is cut
  to whole seconds and is at least one second (``@every 0`` and
  ``@every -5m`` are accepted and mean every second).
- ``Next`` steps months and days with Go's ``AddDate`` and ``time.Date``
  (whose choice of offset for a wall time in a DST gap or overlap is
  copied here), and steps hours, minutes and seconds in absolute time. So a
  wall time in the spring-forward gap is skipped, one in the fall-back hour
  fires twice, and in zones whose DST changes at midnight the walk can
  leave a day without re-checking it, as robfig does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import ExpressionDescriptor, Options  # type: ignore[import-untyped]


@dataclass(frozen=True)
class FieldBounds:
    name: str
    low: int
    high: int
    names: Mapping[str, int]


MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
WEEKDAY_NAMES = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}
FIELDS = (
    FieldBounds("minute", 0, 59, {}),
    FieldBounds("hour", 0, 23, {}),
    FieldBounds("day-of-month", 1, 31, {}),
    FieldBounds("month", 1, 12, MONTH_NAMES),
    FieldBounds("day-of-week", 0, 6, WEEKDAY_NAMES),
)
FIELD_NAMES = tuple(field.name for field in FIELDS)
FIELD_BOUNDS = tuple((field.low, field.high) for field in FIELDS)
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
EVERY = "@every "
# Go's time.ParseDuration units, in nanoseconds.
DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# What Go's strings.Fields splits on (unicode.IsSpace); Python's str.split
# also splits on \x1c-\x1f, which Go keeps inside a field.
GO_SPACES = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# The only non-ASCII characters Go's strings.ToLower turns into ASCII letters.
_GO_LOWER_TO_ASCII = str.maketrans({"\u0130": "i", "\u212a": "k"})
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1
_UINT64 = 2**64
_SECOND_NS = 1_000_000_000
_YEARS_AHEAD = 5
# The CronJob API's rule for each part of a time-zone name
# (k8s.io/kubernetes pkg/apis/batch/validation, validTimeZoneCharacters).
_TIME_ZONE_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")


class CronError(ValueError):
    """The expression is not one the CronJob controller accepts; the message says why."""


@dataclass(frozen=True)
class CronSpec:
    """A field schedule: the sets of minutes, hours, days and months it fires on."""

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

    def can_fire(self) -> bool:
        """False when no time matches, whatever the date (e.g. a field of only commas)."""
        if not (self.minutes and self.hours and self.months):
            return False
        if self.days_star or self.weekdays_star:
            return bool(self.days and self.weekdays)
        return bool(self.days or self.weekdays)


@dataclass(frozen=True)
class Interval:
    """``@every <duration>``: the CronJob controller's ConstantDelaySchedule.

    Its fire times are ``anchor + k * seconds`` for k >= 1, the anchor being
    when the CronJob started counting (its creationTimestamp).
    """

    expression: str
    seconds: int


Cadence = CronSpec | Interval


# Parsed schedules are immutable, and a fleet repeats a few expressions thousands
# of times: every reconcile parses its Schedule's (a tenth of a restart's CPU).
@functools.lru_cache(maxsize=4096)
def parse(expression: str) -> Cadence:
    """Parse a schedule with the CronJob API's rules (robfig/cron's ParseStandard)."""
    if not expression:
        raise CronError("the expression is empty")
    if "TZ" in expression:
        # The API server refuses any schedule containing "TZ", for TZ= and CRON_TZ= prefixes.
        raise CronError("TZ= and CRON_TZ= are not allowed in the expression; set spec.timeZone")
    if expression.startswith("@"):
        return _parse_macro(expression)
    fields = go_fields(expression)
    if len(fields) != 5:
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    parsed = [_parse_field(text, bounds) for text, bounds in zip(fields, FIELDS, strict=True)]
    (minutes, _), (hours, _), (days, days_star), (months, _), (weekdays, weekdays_star) = parsed
    return CronSpec(expression, minutes, hours, days, months, weekdays, days_star, weekdays_star)


def go_fields(text: str) -> list[str]:
    """Go's strings.Fields: split on runs of Unicode white space."""
    return [part for part in re.split(f"[{GO_SPACES}]+", text) if part]


def _parse_macro(expression: str) -> Cadence:
    standard = MACROS.get(expression)
    if standard is not None:
        return replace(parse(standard), expression=expression)
    if expression.startswith(EVERY):
        nanoseconds = parse_go_duration(expression[len(EVERY) :])
        # robfig's Every(): at least a second, and whole seconds only.
        return Interval(expression, max(nanoseconds, _SECOND_NS) // _SECOND_NS)
    allowed = ", ".join([*MACROS, "@every <duration>"])
    raise CronError(f"unknown macro {expression!r}; allowed: {allowed}")


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds; its uint64 arithmetic is kept as is."""
    problem = CronError(
        f"{text!r} is not a duration; write a number and a unit, such as 90m, 1h30m or 45s "
        "(units h, m, s, ms, us, ns)"
    )
    rest, negative = text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise problem
    total = 0
    while rest:
        if not (rest[0] == "." or "0" <= rest[0] <= "9"):
            raise problem
        whole, digits = 0, 0
        while digits < len(rest) and "0" <= rest[digits] <= "9":
            if whole > 2**63 // 10:
                raise problem
            whole = whole * 10 + int(rest[digits])
            if whole > 2**63:
                raise problem
            digits += 1
        before_point = digits > 0
        rest = rest[digits:]
        fraction, scale, after_point = 0, 1.0, False
        if rest[:1] == ".":
            rest = rest[1:]
            digits, overflow = 0, False
            while digits < len(rest) and "0" <= rest[digits] <= "9":
                if not overflow:
                    bigger = fraction * 10 + int(rest[digits])
                    if fraction > _INT64_MAX // 10 or bigger > 2**63:
                        overflow = True
                    else:
                        fraction, scale = bigger, scale * 10
                digits += 1
            after_point = digits > 0
            rest = rest[digits:]
        if not (before_point or after_point):
            raise problem
        length = 0
        while length < len(rest) and not (rest[length] == "." or "0" <= rest[length] <= "9"):
            length += 1
        unit = DURATION_UNITS.get(rest[:length])
        if unit is None:
            raise problem
        rest = rest[length:]
        if whole > 2**63 // unit:
            raise problem
        value = whole * unit
        if fraction > 0:
            # Go computes the fraction in float64 and truncates.
            value += int(float(fraction) * (float(unit) / scale))
            if value > 2**63:
                raise problem
        # A uint64 sum: 2**63 + 2**63 wraps to 0 in Go, and is then accepted.
        total = (total + value) % _UINT64
        if total > 2**63:
            raise problem
    if negative:
        return -total if total < 2**63 else -(2**63)
    if total > _INT64_MAX:
        raise problem
    return total


def _parse_field(text: str, bounds: FieldBounds) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for item in (part for part in text.split(",") if part):
        got, item_star = _parse_range(item, text, bounds)
        values |= got
        star = star or item_star
    return frozenset(values), star


def _parse_range(item: str, text: str, bounds: FieldBounds) -> tuple[set[int], bool]:
    where = f"{bounds.name} field {text!r}"
    range_and_step = item.split("/")
    low_and_high = range_and_step[0].split("-")
    star = low_and_high[0] in ("*", "?")
    if star:
        start, end = bounds.low, bounds.high
    else:
        start = _int_or_name(low_and_high[0], where, bounds)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], where, bounds)
        else:
            raise CronError(f"{where}: {item!r} has more than one '-'")
    step = 1
    if len(range_and_step) == 2:
        step = _go_atoi(range_and_step[1], f"{where}: the step {range_and_step[1]!r}")
        if len(low_and_high) == 1:
            end = bounds.high
        if step > 1:
            star = False
    elif len(range_and_step) > 2:
        raise CronError(f"{where}: {item!r} has more than one '/'")
    for value in (start, end):
        if not bounds.low <= value <= bounds.high:
            raise CronError(f"{where}: {value} is outside {bounds.low}-{bounds.high}")
    if start > end:
        raise CronError(f"{where}: the range {item!r} is reversed; write the lower bound first")
    if step == 0:
        raise CronError(f"{where}: the step must be at least 1")
    return set(range(start, end + 1, step)), star


def _int_or_name(token: str, where: str, bounds: FieldBounds) -> int:
    folded = token.translate(_GO_LOWER_TO_ASCII)
    named = bounds.names.get(folded.lower()) if folded.isascii() else None
    if named is not None:
        return named
    hint = f" or a name such as {next(iter(bounds.names)).upper()}" if bounds.names else ""
    unsupported = any(mark in token.upper() for mark in ("L", "W", "#"))
    extra = "; L, W and # are not supported by CronJobs" if unsupported else ""
    return _go_atoi(token, f"{where}: {token!r} is not a number{hint}{extra}")


def _go_atoi(token: str, problem: str) -> int:
    """Go's strconv.Atoi, then robfig's refusal of negative numbers."""
    if not _GO_INT.fullmatch(token):
        raise CronError(problem)
    value = int(token)
    if not -(2**63) <= value <= _INT64_MAX:
        raise CronError(problem)
    if value < 0:
        raise CronError(f"{problem}; negative numbers are not allowed")
    return value


def zone(name: str) -> ZoneInfo:
    """The IANA zone a CronJob's spec.timeZone may name, with the CronJob API's checks."""
    if not name:
        raise CronError("the time zone is empty; use an IANA name such as Europe/Berlin")
    for part in name.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TIME_ZONE_PART.fullmatch(part):
            raise CronError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin")
    if name.lower() == "local":
        raise CronError(f"time zone {name!r} is not an IANA name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    # A directory of zones such as "America" raises IsADirectoryError, an OSError.
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise CronError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from error


def next_fire_time(
    cadence: Cadence, after: datetime, time_zone: ZoneInfo, anchor: datetime | None = None
) -> datetime | None:
    """The first fire time strictly after ``after`` (aware), in UTC; None within five years.

    ``anchor`` only matters for an Interval: when it started counting (the
    CronJob's creationTimestamp). Without one, the interval counts from
    ``after``, as robfig's ``Next`` does.
    """
    if isinstance(cadence, Interval):
        return _next_interval(cadence, after, anchor)
    if not cadence.can_fire():
        return None  # robfig would search five years and give up
    return _next_in_fields(cadence, after, time_zone)


def _unix_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch, rounded down as Go drops nanoseconds."""
    elapsed = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return elapsed.days * 86400 + elapsed.seconds


def _next_interval(interval: Interval, after: datetime, anchor: datetime | None) -> datetime:
    base = _unix_seconds(anchor if anchor is not None else after)
    elapsed = _unix_seconds(after) - base
    steps = max(1, elapsed // interval.seconds + 1)
    return datetime.fromtimestamp(base + steps * interval.seconds, UTC)


class _GoClock:
    """Go's time arithmetic on Unix seconds in one zone, as robfig's Next uses it."""

    _EPOCH_DAY = date(1970, 1, 1).toordinal()

    def __init__(self, time_zone: ZoneInfo) -> None:
        self.time_zone = time_zone

    def local(self, unix: int) -> datetime:
        return datetime.fromtimestamp(unix, self.time_zone)

    def offset(self, unix: int) -> int:
        delta = self.local(unix).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    def date(self, year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
        """time.Date: out-of-range months and days roll over.

        A wall time in a gap or an overlap takes the offset Go picks: the
        one in force at (wall time - the offset in force at the wall time
        read as UTC).
        """
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
        days = date(year, month, 1).toordinal() - self._EPOCH_DAY + day - 1
        wall = days * 86400 + hour * 3600 + minute * 60 + second
        return wall - self.offset(wall - self.offset(wall))


def _next_in_fields(spec: CronSpec, after: datetime, time_zone: ZoneInfo) -> datetime | None:
    """robfig's SpecSchedule.Next, step by step; ``continue`` is its ``goto WRAP``."""
    clock = _GoClock(time_zone)
    t = _unix_seconds(after) + 1
    now = clock.local(t)
    year_limit = now.year + _YEARS_AHEAD
    added = False
    while True:
        now = clock.local(t)
        if now.year > year_limit:
            return None
        wrapped = False
        while now.month not in spec.months:
            if not added:
                added = True
                t = clock.date(now.year, now.month, 1, 0, 0, 0)
                now = clock.local(t)
            t = clock.date(now.year, now.month + 1, now.day, now.hour, now.minute, now.second)
            now = clock.local(t)
            if now.month == 1:
                wrapped = True
                break
        if wrapped:
            continue
        while not spec.day_matches(now):
            if not added:
                added = True
                t = clock.date(now.year, now.month, now.day, 0, 0, 0)
                now = clock.local(t)
            t = clock.date(now.year, now.month, now.day + 1, now.hour, now.minute, now.second)
            now = clock.local(t)
            # robfig's fix for zones where midnight does not exist: back to
            # the hour that should be midnight, in absolute time.
            if now.hour != 0:
                t += (24 - now.hour) * 3600 if now.hour > 12 else -now.hour * 3600
                now = clock.local(t)
            if now.day == 1:
                wrapped = True
                break
        if wrapped:
            continue
        while now.hour not in spec.hours:
            if not added:
                added = True
                t = clock.date(now.year, now.month, now.day, now.hour, 0, 0)
                now = clock.local(t)
            t += 3600
            now = clock.local(t)
            if now.hour == 0:
                wrapped = True
                break
        if wrapped:
            continue
        while now.minute not in spec.minutes:
            if not added:
                added = True
                t -= t % 60
                now = clock.local(t)
            t += 60
            now = clock.local(t)
            if now.minute == 0:
                wrapped = True
                break
        if wrapped:
            continue
        # The standard parser's seconds field is always "0".
        while now.second != 0:
            added = True
            t += 1
            now = clock.local(t)
            if now.second == 0:
                wrapped = True
                break
        if wrapped:
            continue
        return datetime.fromtimestamp(t, UTC)


# Fleets repeat a few expressions thousands of times, and the descriptor loads
# its translation catalogue for every call (a third of a reconcile's CPU).
@functools.lru_cache(maxsize=4096)
def describe(expression: str, time_zone: str) -> str:
    """The expression in words with its zone, e.g. 'At 02:00 (Asia/Kolkata)'."""
    if expression.startswith(EVERY):
        try:
            cadence = parse(expression)
        except CronError:
            return f"{expression} ({time_zone})"
        if isinstance(cadence, Interval):
            return f"Every {format_seconds(cadence.seconds)} ({time_zone})"
    standard = MACROS.get(expression, expression)
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        words = ExpressionDescriptor(standard.replace("?", "*"), options).get_description()
    except Exception:  # the descriptor is stricter than cron on some forms
        words = standard
    return f"{words} ({time_zone})"


def format_seconds(seconds: int) -> str:
    """A whole number of seconds as Go writes a duration, without zero parts: 1h30m, 45s."""
    hours, rest = divmod(seconds, 3600)
    minutes, rest = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (rest, "s")]
    return "".join(f"{value}{unit}" for value, unit in parts if value) or "0s"
