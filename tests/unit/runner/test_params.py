"""CRONFLEET_PARAMS parsing and the wording of invalid-params messages."""

from __future__ import annotations

import pytest

from cronfleet_runner.contract import EXIT_PERMANENT
from cronfleet_runner.params import InvalidParams, parse_params_json, validate_params
from cronfleet_runner.tasks.sleep import SleepParams


@pytest.mark.parametrize("text", [None, "", "  \n"])
def test_missing_or_blank_params_mean_an_empty_object(text: str | None) -> None:
    assert parse_params_json(text) == {}


def test_a_json_object_is_returned_as_is() -> None:
    assert parse_params_json('{"url": "http://x", "n": [1, 2]}') == {"url": "http://x", "n": [1, 2]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2]", "CRONFLEET_PARAMS must be a JSON object, but it is an array ([1, 2])."),
        ("null", "CRONFLEET_PARAMS must be a JSON object, but it is null (null)."),
        ('"url"', 'CRONFLEET_PARAMS must be a JSON object, but it is a string ("url").'),
        ("3", "CRONFLEET_PARAMS must be a JSON object, but it is a number (3)."),
        (
            "{url: 1}",
            "CRONFLEET_PARAMS is not valid JSON (Expecting property name enclosed in "
            "double quotes at line 1 column 2); it must be a JSON object",
        ),
    ],
)
def test_params_that_are_not_a_json_object_are_permanent(text: str, expected: str) -> None:
    with pytest.raises(InvalidParams) as raised:
        parse_params_json(text)
    assert raised.value.exit_code == EXIT_PERMANENT
    assert raised.value.message.startswith(expected)


def test_every_problem_is_named_with_path_value_and_what_is_allowed() -> None:
    with pytest.raises(InvalidParams) as raised:
        validate_params(SleepParams, {"seconds": -1, "exitCode": "two", "sleep": 3}, "sleep")
    assert raised.value.message == (
        "Invalid params for task 'sleep': "
        "params.seconds: Input should be greater than or equal to 0 (got -1); "
        "params.exitCode: Input should be a valid integer, unable to parse string as an "
        'integer (got "two"); '
        "params.sleep is not a param of task 'sleep'; its params are: seconds, exitCode, message."
    )


def test_a_close_misspelling_gets_a_suggestion() -> None:
    with pytest.raises(
        InvalidParams,
        match=r"params\.exitcode is not a param of task 'sleep' "
        r"\(did you mean exitCode\?\)",
    ):
        validate_params(SleepParams, {"exitcode": 1}, "sleep")
