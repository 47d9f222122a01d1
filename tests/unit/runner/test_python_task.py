"""The ``python`` task, calling functions of an importable module."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from cronfleet_runner.contract import EXIT_PERMANENT, EXIT_RETRYABLE
from cronfleet_runner.params import InvalidParams, validate_params
from cronfleet_runner.task import Outcome, TaskFailure
from cronfleet_runner.tasks.python import PythonParams, python_task
from tests.unit.runner import callables
from tests.unit.runner.conftest import ContextFactory, Recording

MODULE = "tests.unit.runner.callables"


def params(**given: Any) -> PythonParams:
    validated = validate_params(PythonParams, given, "python")
    assert isinstance(validated, PythonParams)
    return validated


def call(recording: Recording, function: str, **kwargs: Any) -> Outcome:
    return python_task.run(
        params(callable=f"{MODULE}:{function}", kwargs=kwargs), recording.context
    )


def failure(recording: Recording, function: str, **kwargs: Any) -> TaskFailure:
    with pytest.raises(TaskFailure) as raised:
        call(recording, function, **kwargs)
    return raised.value


def test_a_sync_function_gets_kwargs_and_its_return_value_becomes_data(
    make_context: ContextFactory,
) -> None:
    outcome = call(make_context(), "export_rows", table="orders", limit=5)
    assert outcome.message.startswith(f"{MODULE}:export_rows returned after ")
    assert outcome.data == {"return": {"table": "orders", "exported": 5}}


def test_an_async_function_is_awaited(make_context: ContextFactory) -> None:
    outcome = call(make_context(), "reindex", index="kb")
    assert outcome.data == {"return": "reindexed kb"}


def test_a_dotted_attribute_path_reaches_a_method(make_context: ContextFactory) -> None:
    assert call(make_context(), "Jobs.nightly").data == {"return": "done"}


def test_none_and_non_json_return_values_give_no_data(make_context: ContextFactory) -> None:
    assert call(make_context(), "nothing").data is None
    outcome = call(make_context(), "opaque")
    assert outcome.data is None
    assert "its object return value is not JSON and is not reported" in outcome.message


def test_an_exception_is_a_retryable_failure_with_the_exception(
    make_context: ContextFactory,
) -> None:
    recording = make_context()
    failed = failure(recording, "explode")
    assert failed.exit_code == EXIT_RETRYABLE
    assert "raised ValueError after" in failed.message
    assert failed.message.endswith(": the upstream API answered garbage")
    [raised] = recording.events("python.raised")
    assert "Traceback" in raised["traceback"] and "def explode" not in raised["traceback"]
    assert "callables.py" in raised["traceback"]


def test_a_permanent_failure_raised_by_the_function_is_kept(
    make_context: ContextFactory,
) -> None:
    failed = failure(make_context(), "misconfigured")
    assert failed.exit_code == EXIT_PERMANENT
    assert failed.message == "the report 'weekly' does not exist"


def test_sys_exit_zero_succeeds_and_non_zero_fails(make_context: ContextFactory) -> None:
    assert call(make_context(), "exits", code=0).data is None
    failed = failure(make_context(), "exits", code=4)
    assert failed.exit_code == EXIT_RETRYABLE
    assert "called sys.exit(4)" in failed.message


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("no_such_package.jobs:run", "the module 'no_such_package.jobs' could not be imported"),
        (f"{MODULE}:missing", "has no attribute 'missing'"),
        (f"{MODULE}:NOT_CALLABLE", "is a int, not a function"),
    ],
)
def test_what_cannot_be_imported_or_called_is_permanent(
    make_context: ContextFactory, reference: str, expected: str
) -> None:
    with pytest.raises(TaskFailure) as raised:
        python_task.run(params(callable=reference), make_context().context)
    assert raised.value.exit_code == EXIT_PERMANENT
    assert raised.value.message.startswith("params.callable: ")
    assert expected in raised.value.message


def test_kwargs_that_do_not_fit_the_signature_are_permanent(make_context: ContextFactory) -> None:
    failed = failure(make_context(), "export_rows", table="orders", limti=5)
    assert failed.exit_code == EXIT_PERMANENT
    assert "params.kwargs do not fit" in failed.message
    assert "export_rows(table: 'str', limit: 'int' = 10)" in failed.message
    assert "unexpected keyword argument 'limti'" in failed.message


def test_a_stop_request_cancels_a_coroutine(make_context: ContextFactory) -> None:
    recording = make_context()
    callables.cancelled.clear()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call(recording, "forever")
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 5
    while not recording.events("python.calling") and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    recording.context.stop.request("test")
    worker.join(2)
    assert not worker.is_alive()
    assert callables.cancelled.is_set()
    assert len(errors) == 1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, "params.callable is required"),
        ({"callable": "jobs.run"}, 'params.callable: it must look like "package.module:function"'),
        ({"callable": "jobs:run", "kwargs": [1]}, "params.kwargs: Input should be a valid dict"),
        ({"callable": "jobs:run", "args": []}, "params.args is not a param of task 'python'"),
    ],
)
def test_invalid_params_are_named_in_the_message(given: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidParams) as raised:
        params(**given)
    assert expected in raised.value.message
