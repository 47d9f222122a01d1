"""Turning ``CRONFLEET_PARAMS`` into a task's validated params, or into a clear sentence.

Every problem found here is permanent (exit 2): the same params would fail
the same way on every retry.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from cronfleet_runner.contract import ENV_PARAMS
from cronfleet_runner.summary import clip
from cronfleet_runner.task import PermanentFailure

MAX_SHOWN_VALUE_CHARS = 80
MAX_REPORTED_ERRORS = 8


class InvalidParams(PermanentFailure):
    """The params are not a JSON object, or do not fit the task's params model."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def parse_params_json(text: str | None) -> dict[str, Any]:
    """The params object; a missing or blank ``CRONFLEET_PARAMS`` means ``{}``."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidParams(
            f"{ENV_PARAMS} is not valid JSON ({error.msg} at line {error.lineno} column "
            f"{error.colno}); it must be a JSON object such as "
            '{"url": "https://example.com"}, or empty for no params.'
        ) from error
    if not isinstance(value, dict):
        raise InvalidParams(
            f"{ENV_PARAMS} must be a JSON object, but it is {_json_type(value)} "
            f"({clip(text.strip(), MAX_SHOWN_VALUE_CHARS)})."
        )
    return value


def field_path(location: Sequence[int | str]) -> str:
    """``("headers", "Accept")`` -> ``params.headers.Accept``; list indexes in brackets."""
    path = "params"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def shown_value(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return clip(text, MAX_SHOWN_VALUE_CHARS)


def param_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _describe(error: ErrorDetails, model: type[BaseModel], task_name: str) -> str:
    location = error["loc"]
    path = field_path(location)
    kind = error["type"]
    if kind == "extra_forbidden":
        if len(location) == 1:
            allowed = param_names(model)
            close = difflib.get_close_matches(str(location[0]), allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            names = ", ".join(allowed) if allowed else "none"
            return f"{path} is not a param of task '{task_name}'{hint}; its params are: {names}"
        return f"{path} is not allowed here"
    if kind == "missing":
        described = ""
        if len(location) == 1:
            for name, info in model.model_fields.items():
                if (info.alias or name) == location[0] and info.description:
                    described = f" ({info.description.rstrip('.')})"
        return f"{path} is required{described}"
    message = error["msg"]
    # pydantic prefixes messages from our own validators with "Value error, ".
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if not location:
        return message
    return f"{path}: {message} (got {shown_value(error.get('input'))})"


def describe_validation_error(
    error: ValidationError, model: type[BaseModel], task_name: str
) -> str:
    """One sentence naming each bad param, the bad value and what is allowed."""
    details = error.errors(include_url=False)
    parts = [_describe(detail, model, task_name) for detail in details[:MAX_REPORTED_ERRORS]]
    more = len(details) - MAX_REPORTED_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return f"Invalid params for task '{task_name}': " + "; ".join(parts) + "."


def validate_params(model: type[BaseModel], params: object, task_name: str) -> BaseModel:
    if not isinstance(params, dict):
        raise InvalidParams(
            f"Invalid params for task '{task_name}': params must be a JSON object, "
            f"but they are {_json_type(params)} ({shown_value(params)})."
        )
    try:
        return model.model_validate(params)
    except ValidationError as error:
        raise InvalidParams(describe_validation_error(error, model, task_name)) from error
