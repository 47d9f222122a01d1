"""When a Schedule fires: one type for every kind of cadence, parsed once.

A Schedule says exactly one of ``cron`` (a native CronJob runs it), ``every``
(an interval in absolute time), ``at`` (one instant), or none of them (it runs
only when asked to). ``startTime``, ``endTime`` and ``maxRuns`` bound any of
them. Every consumer (the reconcile, run tracking, missed runs, metrics,
the description in the status) asks this type, never the spec's fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from zoneinfo import ZoneInfo

from cronfleet.cronschedule import (
    EVERY,
    CronError,
    CronSpec,
    Interval,
    describe,
    format_seconds,
    next_fire_time,
    parse,
    zone,
)
from cronfleet.models import ScheduleSpec

# The operator's scheduler wakes within milliseconds, but each run is a Job and
# a pod: shorter intervals would spend more on starting runs than running them.
MIN_EVERY_SECONDS = 10
EVERY_PATTERN = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
# A walk over fire times in a range stops after this many.
MAX_FIRE_TIMES = 10_000
# How far ahead a cron's period looks: a year covers every pattern (weekends,
# short months, February, a once-a-year date).
PERIOD_WINDOW = timedelta(days=366)


class CadenceKind(StrEnum):
    CRON = "Cron"
    EVERY = "Every"
    AT = "At"
    MANUAL = "Manual"


def parse_every(text: str) -> int:
    """``90m``, ``1h30m``, ``6h``, ``10s``: whole seconds, units h, m and s."""
    match = EVERY_PATTERN.match(text.strip())
    if not text.strip() or match is None:
        raise CronError(
            f"{text!r} is not an interval: write hours, minutes and seconds such as "
            "90m, 1h30m, 6h or 45s"
        )
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total < MIN_EVERY_SECONDS:
        raise CronError(f"{text!r} is shorter than the minimum interval of {MIN_EVERY_SECONDS}s")
    return total


@dataclass(frozen=True)
class Cadence:
    kind: CadenceKind
    time_zone: ZoneInfo
    zone_name: str = "UTC"
    cron: CronSpec | None = None
    expression: str = ""
    every_seconds: int = 0
    at: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    # Where an interval counts from when no startTime is set: the Schedule's creation.
    created: datetime | None = None

    @property
    def native(self) -> bool:
        """Whether a CronJob runs it (cron), rather than the operator itself."""
        return self.kind is CadenceKind.CRON

    def _in_window(self, moment: datetime | None) -> datetime | None:
        if moment is None or (self.end is not None and moment >= self.end):
            return None
        return moment

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after``, inside the window; None if none."""
        if self.start is not None and after < self.start:
            # startTime itself may fire: look from just before it.
            after = self.start - timedelta(seconds=1)
        if self.kind is CadenceKind.CRON and self.cron is not None:
            return self._in_window(next_fire_time(self.cron, after, self.time_zone))
        if self.kind is CadenceKind.EVERY:
            return self._in_window(self._next_interval(after))
        if self.kind is CadenceKind.AT and self.at is not None:
            return self._in_window(self.at if self.at > after else None)
        return None

    def _next_interval(self, after: datetime) -> datetime | None:
        # Absolute time: daylight-saving changes do not move it.
        if self.start is not None:
            first = self.start
        elif self.created is not None:
            first = self.created + timedelta(seconds=self.every_seconds)
        else:
            return None
        if after < first:
            return first
        steps = int((after - first).total_seconds()) // self.every_seconds + 1
        return first + timedelta(seconds=steps * self.every_seconds)

    def fire_times(self, after: datetime, until: datetime) -> list[datetime]:
        """Fire times in (after, until], at most MAX_FIRE_TIMES of them."""
        times: list[datetime] = []
        moment = after
        while len(times) < MAX_FIRE_TIMES:
            fire = self.next_after(moment)
            if fire is None or fire > until:
                break
            times.append(fire)
            moment = fire
        return times

    def describe(self) -> str:
        window = ""
        if self.start is not None:
            window += f", from {_local(self.start, self.time_zone)}"
        if self.end is not None:
            window += f", until {_local(self.end, self.time_zone)}"
        if self.kind is CadenceKind.CRON:
            words = describe(self.expression, self.zone_name)
            return words[: -len(f" ({self.zone_name})")] + window + f" ({self.zone_name})"
        if self.kind is CadenceKind.EVERY:
            return f"Every {format_seconds(self.every_seconds)}{window} ({self.zone_name})"
        if self.kind is CadenceKind.AT and self.at is not None:
            return f"Once at {_local(self.at, self.time_zone)} ({self.zone_name})"
        return "Only when run manually"

    def period_seconds(self, now: datetime | None = None) -> float | None:
        """The longest wait between two fire times from ``now`` on; None for at and manual."""
        if self.kind is CadenceKind.EVERY:
            return float(self.every_seconds)
        if self.kind is CadenceKind.CRON and self.cron is not None:
            return longest_cron_gap(self.cron, self.time_zone, now or datetime.now(UTC))
        return None


def _local(moment: datetime, time_zone: ZoneInfo) -> str:
    return moment.astimezone(time_zone).strftime("%Y-%m-%d %H:%M")


def longest_cron_gap(
    spec: CronSpec, time_zone: ZoneInfo, start: datetime, window: timedelta = PERIOD_WINDOW
) -> float | None:
    """The longest time between two consecutive fire times from ``start`` on, in seconds.

    A weekday schedule's period is the weekend, not the one day a Thursday
    would show. Every firing day has the same times of day, so the work is
    one step a day, even for ``* * * * *``: the gaps inside a day are
    computed once, and between days from the last time of one firing day to
    the first of the next. Only days whose UTC offset changes (daylight
    saving) are walked fire time by fire time, where a time may not exist or
    exist twice.
    """
    times_of_day = sorted(
        timedelta(hours=hour, minutes=minute) for hour in spec.hours for minute in spec.minutes
    )
    if not times_of_day:
        return None
    longest = max(
        ((later - earlier).total_seconds() for earlier, later in pairwise(times_of_day)),
        default=0.0,
    )
    day = start.astimezone(time_zone).date()
    window_end = (start + window).astimezone(time_zone).date()
    # As far as next_fire_time looks: a 29 February is the rarest date cron has.
    horizon = window_end + timedelta(days=366 * 5)
    previous_last: datetime | None = None
    while day <= horizon:
        midnight = datetime(day.year, day.month, day.day, tzinfo=time_zone)
        following = midnight + timedelta(days=1)
        fires: list[datetime] = []
        if day.month in spec.months and spec.day_matches(midnight):
            if midnight.utcoffset() == following.utcoffset():
                # The gaps between days need only a day's first and last time.
                fires = [(midnight + times_of_day[i]).astimezone(UTC) for i in (0, -1)]
            else:
                fires = _fires_between(spec, time_zone, midnight, following)
                gaps = ((b - a).total_seconds() for a, b in pairwise(fires))
                longest = max([longest, *gaps])
        if fires:
            if previous_last is not None:
                longest = max(longest, (fires[0] - previous_last).total_seconds())
                if day > window_end:
                    return longest
            previous_last = fires[-1]
        day += timedelta(days=1)
    # Fewer than two fire times: no period.
    return None


def _fires_between(
    spec: CronSpec, time_zone: ZoneInfo, since: datetime, until: datetime
) -> list[datetime]:
    fires: list[datetime] = []
    moment = next_fire_time(spec, since - timedelta(seconds=1), time_zone)
    while moment is not None and moment < until:
        fires.append(moment)
        moment = next_fire_time(spec, moment, time_zone)
    return fires


def cadence_of(
    *,
    cron: str | None,
    every: str | None,
    at: datetime | None,
    time_zone: str,
    start: datetime | None = None,
    end: datetime | None = None,
    created: datetime | None = None,
) -> Cadence:
    """Parse a spec's cadence; CronError says what is wrong (the field is the caller's)."""
    tz = zone(time_zone)
    given = [name for name, value in (("cron", cron), ("every", every), ("at", at)) if value]
    if len(given) > 1:
        raise CronError(f"{' and '.join(given)} are both set: a Schedule has at most one cadence")
    base = Cadence(CadenceKind.MANUAL, time_zone=tz, zone_name=time_zone, start=start, end=end)
    if cron:
        parsed = parse(cron)
        if isinstance(parsed, Interval):
            # `@every <duration>` in cron is an alias of `every`: the operator runs it.
            return replace(
                base,
                kind=CadenceKind.EVERY,
                expression=cron,
                every_seconds=max(parsed.seconds, 1),
                created=created,
            )
        return replace(base, kind=CadenceKind.CRON, cron=parsed, expression=cron)
    if every:
        return replace(
            base,
            kind=CadenceKind.EVERY,
            expression=every,
            every_seconds=parse_every(every),
            created=created,
        )
    if at:
        return replace(base, kind=CadenceKind.AT, at=at.astimezone(UTC), expression=at.isoformat())
    return base


def spec_cadence(spec: ScheduleSpec, created: datetime | None) -> Cadence:
    """The cadence a valid spec describes (CronError if it does not parse)."""
    return cadence_of(
        cron=spec.cron,
        every=spec.every,
        at=spec.at,
        time_zone=spec.time_zone,
        start=spec.start_time,
        end=spec.end_time,
        created=created,
    )


__all__ = [
    "EVERY",
    "MIN_EVERY_SECONDS",
    "Cadence",
    "CadenceKind",
    "cadence_of",
    "longest_cron_gap",
    "parse_every",
    "spec_cadence",
]
