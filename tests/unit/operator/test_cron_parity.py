"""cronfleet's cron parser against the CronJob's own: robfig/cron v3.0.1, built
as ``hack/cronoracle``.

Hypothesis generates expressions, valid and not (out-of-range numbers, zero and
odd steps, reversed ranges, names, ``?``, lists with empty items, macros,
``@every`` with Go durations good and bad, wrong field counts, garbage), each
with a zone and instants around every DST transition of 2026-2027 in that zone
or at random. All of them go to the oracle in one batch; validity and the next
six fire times after each instant must agree exactly.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronfleet.cronschedule import CronError, next_fire_time, parse
from cronfleet_devcluster.binaries import ensure_cron_oracle

ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # DST moves clocks by 30 minutes
    "America/Santiago",  # changes at midnight
    "America/Havana",  # changes at midnight
    "Asia/Beirut",  # changes at midnight
)
EXPRESSIONS = 1000
FIRE_TIMES = 6
# Seconds around a transition where robfig's walk takes different paths.
AROUND_TRANSITION = (-86400, -7200, -3660, -3600, -1800, -61, -1, 0, 1, 59, 1799, 3600, 86399)


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """The instants in 2026-2027 when the zone's UTC offset changes."""
    zone = ZoneInfo(zone_name)
    found = []
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2028, 1, 1, tzinfo=UTC)
    previous = moment.astimezone(zone).utcoffset()
    while moment < end:
        later = moment + timedelta(hours=1)
        offset = later.astimezone(zone).utcoffset()
        if offset != previous:
            low, high = moment, later  # the change happens in (low, high]
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == previous:
                    low = middle
                else:
                    high = middle
            found.append(high)
            previous = offset
        moment = later
    return tuple(found)


def test_transitions_are_found_in_every_zone_with_dst() -> None:
    # Each of these changes its clocks twice a year (Asia/Kolkata and UTC never).
    for name in ZONES:
        expected = 0 if name in ("UTC", "Asia/Kolkata") else 4
        assert len(transitions(name)) == expected, name


# -- expressions ------------------------------------------------------------------


@dataclass(frozen=True)
class FieldPool:
    numbers: tuple[int, int]
    names: tuple[str, ...]


POOLS = (
    FieldPool((0, 61), ()),
    FieldPool((0, 25), ()),
    FieldPool((0, 32), ()),
    FieldPool((0, 13), ("JAN", "feb", "Mar", "dec", "JANUARY", "jun")),
    FieldPool((0, 8), ("MON", "fri", "Sun", "SAT", "MONDAY", "FR\u0130", "thu")),
)
ODD_TOKENS = ("L", "W", "5#3", "LW", "", "x", "-", "*-", "-5", "+", "5L", "\u0665")


def number(pool: FieldPool) -> st.SearchStrategy[str]:
    low, high = pool.numbers
    plain = st.integers(low, high).map(str)
    # Go's Atoi takes a plus sign and leading zeros.
    odd = st.builds(
        lambda sign, zeros, value: f"{sign}{'0' * zeros}{value}",
        st.sampled_from(["", "+"]),
        st.integers(0, 2),
        st.integers(low, high),
    )
    return st.one_of(plain, plain, plain, odd, st.just("99999999999999999999"))


def value(pool: FieldPool) -> st.SearchStrategy[str]:
    options = [number(pool), number(pool), number(pool)]
    if pool.names:
        options += [st.sampled_from(pool.names), st.sampled_from(pool.names)]
    options.append(st.sampled_from(ODD_TOKENS))
    return st.one_of(options)


def step() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["1", "2", "3", "5", "7", "15", "30", "59"]),
        st.sampled_from(["0", "00", "-1", "+2", "60", "100", "x", "", "-0", "1/2"]),
    )


def item(pool: FieldPool) -> st.SearchStrategy[str]:
    low = st.one_of(st.sampled_from(["*", "?", "*-5", "?-x-y"]), value(pool))
    ranged = st.builds(lambda a, b: f"{a}-{b}", value(pool), value(pool))
    many = st.builds(lambda a, b, c: f"{a}-{b}-{c}", value(pool), value(pool), value(pool))
    head = st.one_of(low, low, ranged, ranged, many)
    return st.builds(
        lambda start, stepped: start + (f"/{stepped}" if stepped is not None else ""),
        head,
        st.one_of(st.none(), st.none(), step()),
    )


def good_item(pool: FieldPool) -> st.SearchStrategy[str]:
    """Mostly what robfig accepts, so that fire times get compared too."""
    low, high = pool.numbers[0] + 1, pool.numbers[1] - 1
    if pool is POOLS[2] or pool is POOLS[3]:
        low += 1  # day-of-month and month start at 1
    bounds = st.tuples(st.integers(low, high), st.integers(low, high)).map(sorted)
    ranged = bounds.map(lambda pair: f"{pair[0]}-{pair[1]}")
    single = st.integers(low, high).map(str)
    names = [name for name in pool.names if len(name) == 3 and name.isascii()]
    head = st.one_of(single, single, ranged, st.sampled_from(["*", "?", *names]))
    stepped = st.one_of(st.none(), st.none(), st.integers(1, 30).map(str))
    return st.builds(lambda h, s: h + (f"/{s}" if s else ""), head, stepped)


def field(pool: FieldPool) -> st.SearchStrategy[str]:
    good = good_item(pool)
    good_list = st.lists(good, min_size=2, max_size=3).map(",".join)
    wild_list = st.lists(item(pool), min_size=1, max_size=3).map(",".join)
    # robfig drops empty list items: ",5" and "1,,2" are valid, "," matches nothing.
    odd_list = st.lists(st.one_of(good, st.just("")), min_size=1, max_size=4).map(",".join)
    simple = st.sampled_from(["*", "*", "?", "0", "*/5", "1-5"])
    return st.one_of(
        simple, simple, simple, good, good, good, good_list, item(pool), wild_list, odd_list
    )


SEPARATORS = st.one_of(
    st.just(" "),
    st.just(" "),
    st.just(" "),
    st.sampled_from(["  ", "\t", " \t ", "\u00a0", "\u2003", "\x1c", "\n", "\v"]),
)


# Built once: constructing strategies inside a draw makes generation slow.
FIELD_STRATEGIES = tuple(field(pool) for pool in POOLS)
EDGES = st.sampled_from(["", "", "", "", " ", "\t", "\u3000"])


@st.composite
def five_fields(draw: st.DrawFn) -> str:
    fields = [draw(strategy) for strategy in FIELD_STRATEGIES]
    text = fields[0]
    for part in fields[1:]:
        text += draw(SEPARATORS) + part
    return draw(EDGES) + text + draw(EDGES)


@st.composite
def wrong_field_count(draw: st.DrawFn) -> str:
    count = draw(st.sampled_from([0, 1, 2, 3, 4, 6, 7]))
    return " ".join(draw(FIELD_STRATEGIES[0]) for _ in range(count))


def go_duration() -> st.SearchStrategy[str]:
    amount = st.one_of(
        st.integers(0, 5000).map(str),
        st.builds(lambda a, b: f"{a}.{b}", st.integers(0, 99), st.integers(0, 999)),
        st.sampled_from([".5", "5.", ".", "", "9999999999", "9223372036854775808", "0.0000001"]),
    )
    unit = st.sampled_from(
        ["h", "m", "s", "ms", "us", "\u00b5s", "\u03bcs", "ns", "m", "s", "", "d", "mh", "M", " s"]
    )
    part = st.builds(lambda a, u: a + u, amount, unit)
    parts = st.lists(part, min_size=1, max_size=3).map("".join)
    sign = st.sampled_from(["", "", "", "-", "+"])
    special = st.sampled_from(
        ["0", "-0", "+0", "", " 5m", "5m ", "1h 30m", "2562047h47m16.854775807s"]
    )
    return st.one_of(st.builds(lambda s, p: s + p, sign, parts), special)


MACRO_NAMES = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"]
macros = st.one_of(
    st.sampled_from(MACRO_NAMES),
    st.sampled_from(["@Daily", "@HOURLY", "@daily ", " @daily", "@", "@fortnightly", "@reboot"]),
    st.sampled_from(["@every", "@every ", "@every  5m", "@Every 5m", "@every\t5m"]),
)
every = go_duration().map(lambda duration: "@every " + duration)
garbage = st.one_of(
    st.text(alphabet=st.sampled_from("0123456789*/,-? @\tLW#MONJANTZ="), max_size=20),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    st.sampled_from(["TZ=UTC 0 * * * *", "CRON_TZ=Asia/Tokyo 5 * * * *", "0 0 * * * TZ"]),
)
expressions = st.one_of(
    five_fields(),
    five_fields(),
    five_fields(),
    five_fields(),
    five_fields(),
    five_fields(),
    macros,
    every,
    every,
    wrong_field_count(),
    garbage,
)


def instants(zone_name: str, rng: Random) -> list[datetime]:
    """Two instants near the zone's DST transitions (if it has any) and one at random."""
    around = [
        moment + timedelta(seconds=offset)
        for moment in transitions(zone_name)
        for offset in AROUND_TRANSITION
    ]
    start = datetime(2025, 12, 1, tzinfo=UTC)
    random = start + timedelta(seconds=rng.uniform(0, 2.2 * 365 * 86400))
    return [*(rng.sample(around, 2) if around else []), random]


@st.composite
def cases(draw: st.DrawFn) -> list[tuple[str, str, list[datetime]]]:
    """One expression in every zone."""
    expression, rng = draw(expressions), draw(st.randoms(use_true_random=False))
    return [(expression, zone_name, instants(zone_name, rng)) for zone_name in ZONES]


# -- the comparison ---------------------------------------------------------------


Answer = dict[str, Any]


def ours(expression: str, zone_name: str, afters: list[datetime]) -> Answer:
    try:
        cadence = parse(expression)
    except CronError as error:
        return {"valid": False, "error": str(error), "next": []}
    zone = ZoneInfo(zone_name)
    series = []
    for after in afters:
        times: list[str | None] = []
        moment = after
        for _ in range(FIRE_TIMES):
            found = next_fire_time(cadence, moment, zone)
            if found is None:
                times.append(None)
                break
            times.append(found.strftime("%Y-%m-%dT%H:%M:%SZ"))
            moment = found
        series.append(times)
    return {"valid": True, "error": "", "next": series}


def ask_oracle(batch: list[tuple[str, str, list[datetime]]]) -> list[Answer]:
    lines = [
        json.dumps(
            {"expr": expression, "zone": zone, "after": [after.isoformat() for after in afters]}
        )
        for expression, zone, afters in batch
    ]
    completed = subprocess.run(
        [str(ensure_cron_oracle())],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    answers = [json.loads(line) for line in completed.stdout.splitlines()]
    assert len(answers) == len(batch), completed.stderr
    return answers


def test_validity_and_fire_times_agree_with_robfig_cron() -> None:
    batch: list[tuple[str, str, list[datetime]]] = []

    # Hypothesis only generates here; the comparison is one oracle run for all.
    @settings(
        max_examples=EXPRESSIONS,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases())
    def collect(in_every_zone: list[tuple[str, str, list[datetime]]]) -> None:
        batch.extend(in_every_zone)

    collect()
    started = time.monotonic()
    answers = ask_oracle(batch)
    oracle_seconds = time.monotonic() - started
    disagreements = []
    fire_times = valid = 0
    for (expression, zone, afters), theirs in zip(batch, answers, strict=True):
        mine = ours(expression, zone, afters)
        valid += bool(theirs["valid"])
        fire_times += sum(len(series) for series in mine["next"])
        if mine["valid"] != theirs["valid"] or mine["next"] != theirs["next"]:
            disagreements.append((expression, zone, [a.isoformat() for a in afters], mine, theirs))
    took = time.monotonic() - started
    print(
        f"\ncron parity: {len(batch)} cases ({valid} valid, {fire_times} fire times) "
        f"agree with robfig/cron; oracle {oracle_seconds:.1f}s, comparison {took:.1f}s"
    )
    shown = "\n".join(repr(item) for item in disagreements[:10])
    assert not disagreements, f"{len(disagreements)} of {len(batch)} cases disagree:\n{shown}"
    assert len(batch) >= EXPRESSIONS * len(ZONES) // 2 and valid >= len(batch) // 5
