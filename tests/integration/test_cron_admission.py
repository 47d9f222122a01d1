"""`kubectl apply` refuses what a CronJob would refuse: the CRD's CEL rules for
cron, timeZone and startingDeadlineSeconds, on the real API server."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from cronfleet.cronschedule import CronError, parse
from cronfleet.models import ScheduleSpec
from tests.integration.conftest import Cluster
from tests.integration.test_schedules import schedule
from tests.unit.operator.test_cron_parity import expressions


def apply(cluster: Cluster, namespace: str, body: dict[str, Any]) -> tuple[bool, str]:
    done = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body), check=False)
    return done.returncode == 0, done.stderr.strip()


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        (
            {"cron": "61 * * * *"},
            ("spec.cron", "cron '61 * * * *': minute field '61' is not valid", "0-59"),
        ),
        ({"cron": "* * * * 8"}, ("spec.cron", "day-of-week field '8'", "0-6 or SUN-SAT")),
        ({"cron": "*/0 * * * *"}, ("spec.cron", "minute field '*/0'", "n >= 1")),
        ({"cron": "5-1 * * * *"}, ("spec.cron", "minute field '5-1'", "a <= b")),
        (
            {"cron": "0 0 * * MONDAY"},
            (
                "spec.cron",
                "day-of-week field 'MONDAY'",
            ),
        ),
        ({"cron": "0 0 * JANUARY *"}, ("spec.cron", "month field 'JANUARY'", "JAN-DEC")),
        (
            {"cron": "0 0 * * * *"},
            ("spec.cron", "cron '0 0 * * * *' has more than 5 fields", "expected minute hour"),
        ),
        ({"cron": "@fortnightly"}, ("spec.cron", "'@fortnightly' is not a known macro")),
        ({"cron": "@every 5x"}, ("spec.cron", "'5x' is not a duration", "90m")),
        (
            {"cron": "@every 1h 30m"},
            (
                "spec.cron",
                "'1h 30m' is not a duration",
            ),
        ),
        ({"cron": "@every 9999999999h"}, ("spec.cron", "@every duration is out of range")),
        ({"cron": "CRON_TZ=UTC 0 * * * *"}, ("spec.cron", "contains TZ", "spec.timeZone")),
        ({"timeZone": "Mars/Olympus_Mons"}, ("spec.timeZone", "Mars/Olympus_Mons", "IANA")),
        ({"timeZone": "America"}, ("spec.timeZone", "timeZone 'America' is a region")),
        (
            {"timeZone": "Local"},
            (
                "spec.timeZone",
                "timeZone 'Local' is not allowed",
            ),
        ),
        (
            {"timeZone": "America/-Bogus"},
            (
                "spec.timeZone",
                "'America/-Bogus'",
            ),
        ),
        (
            {"startingDeadlineSeconds": 5},
            ("spec.startingDeadlineSeconds", "5 is not valid: at least 10", "every 10 seconds"),
        ),
    ],
)
def test_bad_values_are_refused_with_field_and_value(
    cluster: Cluster, namespace: str, crd: None, spec: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    accepted, output = apply(cluster, namespace, schedule("bad", **spec))
    print(output)
    assert not accepted
    for fragment in fragments:
        assert fragment in output, output


@pytest.mark.parametrize(
    "spec",
    [
        {"cron": "*/5 * * * *"},
        {"cron": "@every 90m"},
        {"cron": "0 9 * * MON-FRI"},
        {"cron": "0 2 * * *", "timeZone": "Asia/Kolkata"},
        {"cron": "@daily", "timeZone": "America/Argentina/Buenos_Aires"},
        {"cron": "0 0 1,15 * ?", "startingDeadlineSeconds": 10},
    ],
)
def test_good_values_are_accepted(
    cluster: Cluster, namespace: str, crd: None, spec: dict[str, Any]
) -> None:
    accepted, output = apply(cluster, namespace, schedule("good", **spec))
    assert accepted, output


def expected_to_pass(expression: str) -> bool:
    """The schema's own checks (pattern, length) and the parser's, as the operator runs them."""
    try:
        ScheduleSpec.model_validate({"cron": expression, "task": "http"})
        parse(expression)
    except (ValidationError, CronError):
        return False
    return True


def test_api_server_and_parser_agree_on_generated_expressions(
    cluster: Cluster, namespace: str, crd: None
) -> None:
    generated: list[str] = []

    @settings(
        max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(expressions)
    def collect(expression: str) -> None:
        generated.append(expression)

    collect()
    items = [schedule(f"s-{index}", cron=text) for index, text in enumerate(generated)]
    body = {"apiVersion": "v1", "kind": "List", "items": items}
    done = cluster.kubectl(
        "create",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        "-o",
        "name",
        input=json.dumps(body),
        check=False,
    )
    created = set(re.findall(r"schedule\.cronfleet\.io/(s-\d+)", done.stdout))
    refused = set(re.findall(r'"(s-\d+)" is invalid', done.stderr))
    assert created | refused == {f"s-{index}" for index in range(len(generated))}, done.stderr
    disagreements = [
        (text, f"s-{index}" in created)
        for index, text in enumerate(generated)
        if (f"s-{index}" in created) != expected_to_pass(text)
    ]
    print(f"\n{len(generated)} expressions: {len(created)} accepted, {len(refused)} refused")
    assert not disagreements, disagreements
