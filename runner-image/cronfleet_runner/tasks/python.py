"""``python``: call ``package.module:function(**kwargs)`` from a package in the image.

For teams whose job is already a Python function: install the package in an
image ``FROM`` the runner image and point a Schedule at the function. Async
functions run in their own event loop and are cancelled on SIGTERM. The
function may raise ``cronfleet_runner.PermanentFailure`` to end the run with
exit 2; any other exception is a retryable failure (exit 1).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import re
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import Field, field_validator

from cronfleet_runner.stopping import StopRequest
from cronfleet_runner.summary import clip
from cronfleet_runner.task import (
    Outcome,
    PermanentFailure,
    RetryableFailure,
    RunContext,
    TaskFailure,
    TaskParams,
    task,
)

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
CALLABLE_PATTERN = f"^{_DOTTED}:{_DOTTED}$"
_CALLABLE = re.compile(CALLABLE_PATTERN)
MAX_TRACEBACK_CHARS = 4000
MAX_ERROR_CHARS = 600

T = TypeVar("T")


class PythonParams(TaskParams):
    callable_: str = Field(
        alias="callable",
        description='The function to call, as "package.module:function" (a dotted attribute '
        'path after the colon is allowed, e.g. "app.jobs:Reports.nightly").',
        json_schema_extra={"pattern": CALLABLE_PATTERN},
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for the function: a JSON object.",
    )

    @field_validator("callable_")
    @classmethod
    def _reference(cls, reference: str) -> str:
        if not _CALLABLE.fullmatch(reference):
            raise ValueError(
                'it must look like "package.module:function": a dotted module path, a colon, '
                "and the function's (dotted) name"
            )
        return reference


def resolve(reference: str) -> Callable[..., Any]:
    """The function ``reference`` names; PermanentFailure when it cannot be had."""
    module_name, _, attribute_path = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:
        raise PermanentFailure(
            f"params.callable: the module {module_name!r} could not be imported: "
            f"{type(error).__name__}: {clip(str(error), MAX_ERROR_CHARS)}."
        ) from error
    for part in attribute_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as error:
            raise PermanentFailure(
                f"params.callable: {reference!r} does not exist: {type(target).__name__} "
                f"{getattr(target, '__name__', '?')!r} has no attribute {part!r}."
            ) from error
    if not callable(target):
        raise PermanentFailure(
            f"params.callable: {reference!r} is a {type(target).__name__}, not a function."
        )
    return target  # type: ignore[no-any-return]


def _check_arguments(function: Callable[..., Any], reference: str, kwargs: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # some built-in callables do not describe themselves; the call will tell
    try:
        signature.bind(**kwargs)
    except TypeError as error:
        raise PermanentFailure(
            f"params.kwargs do not fit {reference}{signature}: {error}."
        ) from error


def run_awaitable(awaitable: Awaitable[T], stop: StopRequest) -> T:
    """Run a coroutine in a new event loop, cancelling it when a stop is requested."""

    async def guarded() -> T:
        future = asyncio.ensure_future(awaitable)
        loop = asyncio.get_running_loop()

        def cancel() -> None:
            loop.call_soon_threadsafe(future.cancel)

        unregister = stop.on_request(cancel)
        try:
            return await future
        finally:
            unregister()

    return asyncio.run(guarded())


def _returned_data(value: Any) -> tuple[dict[str, Any] | None, str]:
    if value is None:
        return None, ""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None, f"; its {type(value).__name__} return value is not JSON and is not reported"
    return {"return": value}, ""


@task("python", params=PythonParams)
def python_task(params: PythonParams, context: RunContext) -> Outcome:
    """Call package.module:function(**kwargs), sync or async, from a package in the image."""
    reference = params.callable_
    function = resolve(reference)
    _check_arguments(function, reference, params.kwargs)
    context.log.info("python.calling", callable=reference, kwargs=sorted(params.kwargs))
    started = time.monotonic()
    try:
        value = function(**params.kwargs)
        if inspect.isawaitable(value):
            value = run_awaitable(value, context.stop)
    except TaskFailure:
        raise
    except SystemExit as exit_:
        if exit_.code in (None, 0):
            value = None
        else:
            raise RetryableFailure(
                f"{reference} called sys.exit({exit_.code!r}) after "
                f"{time.monotonic() - started:.2f}s."
            ) from exit_
    except Exception as error:
        elapsed = time.monotonic() - started
        context.log.error(
            "python.raised",
            callable=reference,
            error=f"{type(error).__name__}: {error}",
            traceback="".join(traceback.format_exception(error))[-MAX_TRACEBACK_CHARS:],
        )
        raise RetryableFailure(
            f"{reference} raised {type(error).__name__} after {elapsed:.2f}s: "
            f"{clip(str(error), MAX_ERROR_CHARS)}"
        ) from error
    elapsed = time.monotonic() - started
    data, note = _returned_data(value)
    return Outcome(f"{reference} returned after {elapsed:.2f}s{note}.", data)
