"""The CRD's CEL rules for cron accept exactly what the parser accepts.

The rules are regular expressions plus a little CEL; here they run under
Python's re (the patterns use only syntax RE2 and re read alike) on the same
generated expressions as the parity test. The integration tests run them on
the real API server.
"""

from __future__ import annotations

import re
from functools import cache
from zoneinfo import available_timezones

from hypothesis import HealthCheck, given, settings

from cronfleet.cronrules import (
    EVERY_PATTERN,
    MACRO,
    STARTING_DEADLINE_ALLOWED,
    TOKEN,
    ZONE_DIRECTORIES,
    cron_rules,
    field_pattern,
    starting_deadline_rules,
)
from cronfleet.cronschedule import EVERY, FIELDS, CronError, parse, parse_go_duration
from cronfleet.validation import validate_spec
from tests.unit.operator.test_cron_parity import expressions


@cache
def compiled(pattern: str) -> re.Pattern[str]:
    # In RE2 a final $ is the end of the text only; in Python's re it also
    # matches before a final newline.
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)


def go_matches(pattern: str, text: str) -> bool:
    """CEL's matches(): an RE2 search."""
    return compiled(pattern).search(text) is not None


FIELD_PATTERNS = tuple(field_pattern(bounds) for bounds in FIELDS)


def go_duration_loads(text: str) -> bool:
    try:
        parse_go_duration(text)
    except CronError:
        return False
    return True


def rules_accept(expression: str) -> bool:
    """The cron rules of cronfleet.cronrules, evaluated as the API server would."""
    if "TZ" in expression:
        return False
    if expression.startswith("@"):
        return go_matches(MACRO, expression) or (
            go_matches(EVERY_PATTERN, expression) and go_duration_loads(expression[len(EVERY) :])
        )
    fields = re.findall(TOKEN, expression)
    return len(fields) == 5 and all(
        go_matches(pattern, text) for pattern, text in zip(FIELD_PATTERNS, fields, strict=True)
    )


def parser_accepts(expression: str) -> bool:
    try:
        parse(expression)
    except CronError:
        return False
    return True


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(expressions)
def test_rules_accept_what_the_parser_accepts(expression: str) -> None:
    assert rules_accept(expression) == parser_accepts(expression)


def test_rules_are_the_ones_in_the_crd() -> None:
    rules = cron_rules()
    # One rule for TZ, one for macros, one for the field count, one per field.
    assert len(rules) == 3 + len(FIELDS)
    assert all("messageExpression" in rule for rule in rules)
    for bounds in FIELDS:
        assert any(field_pattern(bounds) in rule["rule"] for rule in rules)


def test_operator_refuses_a_short_starting_deadline_in_the_crd_words() -> None:
    spec = {"cron": "0 2 * * *", "task": "http", "startingDeadlineSeconds": 5}
    parsed, problems = validate_spec(spec, known_tasks=None)
    assert parsed is None
    [problem] = problems
    assert problem.message() == (
        "spec.startingDeadlineSeconds: 5 is not valid: at least 10: the CronJob controller "
        "checks schedules every 10 seconds, so a shorter deadline may never start a run"
    )
    [rule] = starting_deadline_rules()
    assert STARTING_DEADLINE_ALLOWED in rule["messageExpression"]
    assert validate_spec({**spec, "startingDeadlineSeconds": 10}, known_tasks=None)[1] == []


def test_every_zone_directory_is_refused_by_name() -> None:
    # The tz database of this machine: every prefix of a zone name is a directory.
    directories = {name.rsplit("/", 1)[0] for name in available_timezones() if "/" in name}
    directories |= {name.rsplit("/", 1)[0] for name in directories if "/" in name}
    assert directories <= set(ZONE_DIRECTORIES)
