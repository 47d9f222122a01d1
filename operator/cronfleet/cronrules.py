"""Apply-time checks of cron, timeZone and startingDeadlineSeconds as CEL rules.

``cronfleet.crd`` puts these rules into the Schedule CRD, so that
``kubectl apply`` refuses what a CronJob would refuse, with no webhook. They
are generated from the tables ``cronfleet.cronschedule`` parses with (field
bounds, names, macros, duration units, Go's white space), and encode
robfig/cron's grammar as regular expressions (RE2, as the API server runs
them): per field, every accepted number, name, range (lower bound first),
step and list. ``tests/unit/operator/test_cron_rules.py`` checks them
against the parser; the integration tests check them on a real API server.

Each rule sits on its own property, so validation ratcheting applies: an
object stored before a rule existed keeps working until that value changes.
"""

from __future__ import annotations

from typing import Any

from cronfleet.cronschedule import (
    DURATION_UNITS,
    EVERY,
    FIELDS,
    GO_SPACES,
    MACROS,
    FieldBounds,
)

# The CronJob controller looks at its CronJobs every 10 seconds: a run whose
# deadline is shorter can be skipped for no other reason.
MIN_STARTING_DEADLINE_SECONDS = 10
STARTING_DEADLINE_ALLOWED = (
    f"at least {MIN_STARTING_DEADLINE_SECONDS}: the CronJob controller checks schedules every "
    f"{MIN_STARTING_DEADLINE_SECONDS} seconds, so a shorter deadline may never start a run"
)

# Go's int64 maximum: robfig's steps are parsed with strconv.Atoi.
_INT64_MAX = str(2**63 - 1)


def _space_class() -> str:
    """GO_SPACES as a regex class body that Go's regexp and Python's re read alike:
    Latin-1 characters escaped (a CEL string may not hold a line break), the rest literal."""
    escapes = {"\t": r"\t", "\n": r"\n", "\v": r"\v", "\f": r"\f", "\r": r"\r"}
    escapes |= {"\x85": r"\x85", "\xa0": r"\xa0"}
    return "".join(escapes.get(char, char) for char in GO_SPACES)


# One field of a 5-field expression, as Go's strings.Fields splits them.
TOKEN = f"[^{_space_class()}]+"
MACRO = "^@(" + "|".join(name[1:] for name in MACROS) + ")$"
_UNITS = "|".join(sorted(DURATION_UNITS, key=len, reverse=True))
DURATION = rf"[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)({_UNITS}))+)"
EVERY_PATTERN = f"^{EVERY}{DURATION}$"
CEL = dict[str, Any]
# With optionalOldSelf: true, on an update that leaves the value as it was.
_UNCHANGED = "(oldSelf.hasValue() && oldSelf.value() == self)"


def _digits(low: int, high: int) -> str:
    """Decimal numbers from low to high (both < 100), without leading zeros."""
    parts = []
    for tens in range(low // 10, high // 10 + 1):
        first, last = max(low, tens * 10) % 10, min(high, tens * 10 + 9) % 10
        units = str(first) if first == last else f"[{first}-{last}]"
        parts.append(units if tens == 0 else f"{tens}{units}")
    return "|".join(parts)


def _at_most(limit: str) -> str:
    """Numbers of len(limit) digits, not starting with 0, up to limit."""
    parts = []
    for index, digit in enumerate(limit):
        low = 1 if index == 0 else 0
        if int(digit) > low:
            rest = len(limit) - index - 1
            parts.append(f"{limit[:index]}[{low}-{int(digit) - 1}][0-9]{{{rest}}}")
    return "|".join([*parts, limit])


def _name(name: str) -> str:
    """A name as Go's strings.ToLower matches it: any case, and the two
    non-ASCII letters that lower-case to ASCII (U+0130 to i, U+212A to k)."""
    extra = {"i": "\u0130", "k": "\u212a"}
    return "".join(f"[{c}{c.upper()}{extra.get(c, '')}]" for c in name)


def value_pattern(bounds: FieldBounds, low: int, high: int) -> str:
    """A number (Go's Atoi: a plus sign and leading zeros allowed) or name in low..high."""
    options = [rf"\+?0*({_digits(low, high)})"]
    options += [_name(name) for name, number in bounds.names.items() if low <= number <= high]
    return "(" + "|".join(options) + ")"


def field_pattern(bounds: FieldBounds) -> str:
    """What robfig's getField accepts for one field."""
    low, high = bounds.low, bounds.high
    step = rf"(/\+?0*([1-9][0-9]{{0,17}}|{_at_most(_INT64_MAX)}))?"
    # "*" or "?" ignore whatever follows a "-" (robfig reads only the part before it).
    star = "[*?](-[^/,]*)?"
    single = value_pattern(bounds, low, high)
    ranges = "|".join(
        f"{value_pattern(bounds, start, start)}-{value_pattern(bounds, start, high)}"
        for start in range(low, high + 1)
    )
    item = f"({star}|{single}|{ranges}){step}"
    # Empty list items are dropped; a field of commas alone is accepted.
    return f"^,*({item}(,+{item})*)?,*$"


def _allowed(bounds: FieldBounds) -> str:
    names = ""
    if bounds.names:
        names = f" or {min(bounds.names, key=bounds.names.__getitem__).upper()}-"
        names += max(bounds.names, key=bounds.names.__getitem__).upper()
    return (
        f"{bounds.low}-{bounds.high}{names}, * or ?, ranges a-b with a <= b, steps */n, a/n "
        "or a-b/n with n >= 1, and comma-separated lists"
    )


def _raw(pattern: str) -> str:
    """A CEL raw string literal: backslashes stay as they are."""
    assert "'" not in pattern
    return f"r'{pattern}'"


def cron_rules() -> list[CEL]:
    fields = f"self.findAll({_raw(TOKEN)})"
    macros = ", ".join(MACROS)
    rules: list[CEL] = [
        {
            "rule": "!self.contains('TZ')",
            "messageExpression": "'cron \\'' + self + '\\' contains TZ: CronJobs refuse TZ= and "
            "CRON_TZ= in the schedule; set spec.timeZone instead'",
            "reason": "FieldValueInvalid",
        },
        {
            # duration() refuses what the pattern cannot see: a total beyond Go's ~292 years.
            # Its failure is an evaluation error, which ratcheting does not forgive, so an
            # unchanged value is let through explicitly.
            "rule": f"{_UNCHANGED} || !self.startsWith('@') || self.matches({_raw(MACRO)}) || "
            f"(self.matches({_raw(EVERY_PATTERN)}) && "
            f"duration(self.substring({len(EVERY)})) == duration(self.substring({len(EVERY)})))",
            "message": "cron: the @every duration is out of range",
            "optionalOldSelf": True,
            "messageExpression": f"self.startsWith({_raw(EVERY)}) ? 'cron \\'' + self + "
            f"'\\': \\'' + self.substring({len(EVERY)}) + '\\' is not a duration: write a "
            "number and a unit, such as 90m, 1h30m or 45s (units h, m, s, ms, us, ns)' : "
            "'cron \\'' + self + '\\' is not a known macro: allowed are "
            f"{macros} and @every <duration>'",
            "reason": "FieldValueInvalid",
        },
        {
            "rule": f"self.startsWith('@') || size({fields}) == 5",
            # No string(int) in messages: its size is unbounded, so is its estimated cost.
            "messageExpression": f"'cron \\'' + self + '\\' has ' + (size({fields}) < 5 ? "
            "'fewer' : 'more') + ' than 5 fields: expected minute hour day-of-month month "
            "day-of-week, or a macro such as @daily'",
            "reason": "FieldValueInvalid",
        },
    ]
    for index, bounds in enumerate(FIELDS):
        rules.append(
            {
                "rule": f"self.startsWith('@') || size({fields}) != 5 || "
                f"{fields}[{index}].matches({_raw(field_pattern(bounds))})",
                "messageExpression": f"'cron \\'' + self + '\\': {bounds.name} field \\'' + "
                f"{fields}[{index}] + '\\' is not valid: allowed are {_allowed(bounds)}'",
                "reason": "FieldValueInvalid",
            }
        )
    return rules


# The tz database's directories: loading one fails with a bare "is a
# directory", so they are refused by name first, with a message that names them.
ZONE_DIRECTORIES = (
    "Africa",
    "America",
    "America/Argentina",
    "America/Indiana",
    "America/Kentucky",
    "America/North_Dakota",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Brazil",
    "Canada",
    "Chile",
    "Etc",
    "Europe",
    "Indian",
    "Mexico",
    "Pacific",
    "US",
    "posix",
    "right",
)


def time_zone_rules() -> list[CEL]:
    """The CronJob API's checks of spec.timeZone (validateTimeZone in k8s.io/kubernetes)."""
    return [
        {
            "rule": f"!(self in {list(ZONE_DIRECTORIES)!r})",
            "messageExpression": "'timeZone \\'' + self + '\\' is a region, not a time zone: "
            "name a zone in it, such as America/New_York or Europe/Berlin'",
            "reason": "FieldValueInvalid",
        },
        {
            "rule": "self.split('/').all(part, size(part) <= 14 && !part.startsWith('-') "
            "&& part != '.' && part != '..')",
            "messageExpression": "'timeZone \\'' + self + '\\' is not a time zone name: each "
            "part is at most 14 characters and does not start with -'",
            "reason": "FieldValueInvalid",
        },
        {
            "rule": "self.lowerAscii() != 'local'",
            "messageExpression": "'timeZone \\'' + self + '\\' is not allowed: name an IANA "
            "time zone such as Europe/Berlin'",
            "reason": "FieldValueInvalid",
        },
        {
            # Reading a time in the zone loads it as the CronJob API does
            # (time.LoadLocation); an unknown zone or a directory of zones
            # such as America fails to load, and the error names it.
            # An unknown zone is an evaluation error, which ratcheting does not forgive:
            # without the first clause a stored object with such a zone could not even
            # take an annotation. (The operator marks it Invalid.)
            "rule": f"{_UNCHANGED} || timestamp('2000-01-01T00:00:00Z').getHours(self) >= 0",
            "optionalOldSelf": True,
            "message": "timeZone must be an IANA time zone such as Europe/Berlin or Asia/Kolkata",
            "messageExpression": "'timeZone \\'' + self + '\\' is not valid: name an IANA time "
            "zone such as Europe/Berlin or Asia/Kolkata'",
            "reason": "FieldValueInvalid",
        },
    ]


def starting_deadline_rules() -> list[CEL]:
    return [
        {
            "rule": f"self >= {MIN_STARTING_DEADLINE_SECONDS}",
            # The value is below 10 here (and at least 0, the schema's minimum):
            # a list lookup prints it, where string(self) would have no cost bound.
            "messageExpression": "'startingDeadlineSeconds: ' + "
            f"{[str(n) for n in range(MIN_STARTING_DEADLINE_SECONDS)]!r}[self] + "
            f"' is not valid: {STARTING_DEADLINE_ALLOWED}'",
            "message": f"startingDeadlineSeconds is not valid: {STARTING_DEADLINE_ALLOWED}",
            "reason": "FieldValueInvalid",
        }
    ]
