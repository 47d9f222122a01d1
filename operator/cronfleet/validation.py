"""Checks of a Schedule's spec that the API server's schema cannot make.

Each problem names the field, the value and what is allowed, so the message
in the status condition and the Warning event tells the user what to change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from cronfleet.cadence import parse_every
from cronfleet.cronrules import MIN_STARTING_DEADLINE_SECONDS, STARTING_DEADLINE_ALLOWED
from cronfleet.cronschedule import CronError, parse, zone
from cronfleet.models import MAX_PARAMS_BYTES, ScheduleSpec

RESERVED_ENV_PREFIX = "CRONFLEET_"
# Kubernetes' resource.Quantity syntax; the API server rejects anything else
# only when the CronJob is written, with a less helpful message.
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
# No task needs params nested deeper than this. The API server stores objects
# nested up to 10,000 levels, and every copy, encoding and decoding of one
# recurses once per level, so deep params are refused before anything else
# (the runner's check, the size, the CronJob's env) walks them.
MAX_PARAMS_DEPTH = 32


@dataclass(frozen=True)
class Problem:
    field: str
    value: str
    allowed: str

    def message(self) -> str:
        return f"spec.{self.field}: {self.value} is not valid: {self.allowed}"


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


ParamsCheck = Callable[[str, Any], str | None]


def validate_spec(
    raw: Mapping[str, Any],
    known_tasks: frozenset[str] | None,
    check_params: ParamsCheck | None = None,
) -> tuple[ScheduleSpec | None, list[Problem]]:
    """Parse and check a spec.

    ``known_tasks`` None means task names are not checked; ``check_params``
    (the runner's own validation of a built-in task's params) returns the
    runner's message for params it would refuse with exit 2, else None.
    """
    try:
        spec = ScheduleSpec.model_validate(dict(raw))
    except ValidationError as error:
        problems: list[Problem] = []
        for detail in error.errors():
            item: dict[str, Any] = dict(detail)
            where = ".".join(str(part) for part in item["loc"])
            problems.append(Problem(where, _short(item.get("input")), item["msg"]))
        return None, problems

    problems = []
    if spec.cron is not None:
        try:
            parse(spec.cron)
        except CronError as error:
            problems.append(Problem("cron", repr(spec.cron), str(error)))
    if spec.every is not None:
        try:
            parse_every(spec.every)
        except CronError as error:
            problems.append(Problem("every", repr(spec.every), str(error)))
    given = [name for name in ("cron", "every", "at") if getattr(spec, name) is not None]
    if len(given) > 1:
        problems.append(
            Problem(
                " and ".join(given),
                "both set",
                "a Schedule has at most one of cron, every and at (none: run-now only)",
            )
        )
    if spec.start_time and spec.end_time and spec.end_time <= spec.start_time:
        problems.append(Problem("endTime", spec.end_time.isoformat(), "it must be after startTime"))
    try:
        zone(spec.time_zone)
    except CronError as error:
        problems.append(Problem("timeZone", repr(spec.time_zone), str(error)))
    # The CRD refuses it too; this is for clusters where that admission is off.
    if spec.starting_deadline_seconds < MIN_STARTING_DEADLINE_SECONDS:
        problems.append(
            Problem(
                "startingDeadlineSeconds",
                str(spec.starting_deadline_seconds),
                STARTING_DEADLINE_ALLOWED,
            )
        )
    if known_tasks is not None and spec.task not in known_tasks:
        allowed = ", ".join(sorted(known_tasks))
        problems.append(Problem("task", repr(spec.task), f"the runner's tasks are {allowed}"))
    depth = nesting_depth(spec.params)
    if depth > MAX_PARAMS_DEPTH:
        problems.append(
            Problem(
                "params",
                f"an object nested {depth} levels deep",
                f"params may nest objects and arrays at most {MAX_PARAMS_DEPTH} levels deep",
            )
        )
    else:
        problems.extend(_params_problems(spec, known_tasks, check_params))
    problems.extend(_reserved_env_problems(spec))
    problems.extend(_resource_problems(spec.resources or {}))
    return (spec if not problems else None), problems


def _reserved_env_problems(spec: ScheduleSpec) -> list[Problem]:
    """``env`` names and ``envFrom`` prefixes that would set cronfleet's own variables."""
    checks = (
        (
            "env",
            "name",
            spec.env,
            f"names starting with {RESERVED_ENV_PREFIX} are set by cronfleet",
        ),
        (
            "envFrom",
            "prefix",
            spec.env_from,
            f"a prefix starting with {RESERVED_ENV_PREFIX} would set cronfleet's own variables",
        ),
    )
    return [
        Problem(f"{field}[{index}].{key}", repr(value), allowed)
        for field, key, items, allowed in checks
        for index, item in enumerate(items or [])
        if (value := str(item.get(key, ""))).startswith(RESERVED_ENV_PREFIX)
    ]


def nesting_depth(value: Any) -> int:
    """Levels of objects and arrays in a JSON value: 0 for a scalar, 1 for ``{}`` or ``[1]``.

    Counted with an explicit stack, not recursion, so that no input can
    exhaust the interpreter's stack while being measured.
    """
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, above = pending.pop()
        if isinstance(item, Mapping):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, above + 1)
        pending.extend((child, above + 1) for child in children)
    return deepest


def _params_problems(
    spec: ScheduleSpec, known_tasks: frozenset[str] | None, check_params: ParamsCheck | None
) -> list[Problem]:
    problems = []
    builtin = check_params is not None and (known_tasks is None or spec.task in known_tasks)
    if builtin and check_params is not None:
        refusal = check_params(spec.task, spec.params)
        # An unknown task is reported above (or is a plugin the runner image adds).
        if refusal and not refusal.startswith("Unknown task"):
            problems.append(Problem("params", _short(spec.params), refusal))
    size = len(json.dumps(spec.params, separators=(",", ":")).encode())
    if size > MAX_PARAMS_BYTES:
        problems.append(
            Problem(
                "params",
                f"an object of {size} bytes",
                f"params may take at most {MAX_PARAMS_BYTES} bytes as JSON",
            )
        )
    return problems


def _resource_problems(resources: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
        if not isinstance(values, Mapping):
            problems.append(
                Problem(f"resources.{section}", _short(values), "a map of resource quantities")
            )
            continue
        for resource, quantity in values.items():
            if not QUANTITY.match(str(quantity)):
                problems.append(
                    Problem(
                        f"resources.{section}.{resource}",
                        _short(quantity),
                        "a quantity such as 500m, 2, 128Mi or 1Gi",
                    )
                )
    return problems


def missing_service_account(name: str) -> Problem:
    return Problem(
        "serviceAccountName",
        repr(name),
        "no ServiceAccount of that name exists in the namespace; create it or remove the field",
    )
