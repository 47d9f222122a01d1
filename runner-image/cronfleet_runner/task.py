"""What a task is: a name, a pydantic model for its params, and a ``run`` function.

A task succeeds by returning an :class:`Outcome` and fails by raising a
:class:`TaskFailure`: :class:`RetryableFailure` (exit 1, the operator retries
later) or :class:`PermanentFailure` (exit 2, retrying cannot help). Any other
exception counts as retryable.

Tasks from other packages implement the same :class:`Task` protocol, usually
through the :func:`task` decorator, and register under the ``cronfleet.tasks``
entry-point group (see ``cronfleet_runner.registry``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from pydantic.fields import ComputedFieldInfo, FieldInfo

from cronfleet_runner.contract import EXIT_PERMANENT, EXIT_RETRYABLE, RunMetadata
from cronfleet_runner.eventlog import EventLog
from cronfleet_runner.stopping import StopRequest


def _field_title(name: str, info: FieldInfo | ComputedFieldInfo) -> str:
    return info.alias or name


class TaskParams(BaseModel):
    """Base of every task's params: camelCase names as in Kubernetes, unknown params rejected.

    Subclass it with snake_case attributes; ``timeout_seconds`` is written
    ``timeoutSeconds`` in a Schedule's ``params``.
    """

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        frozen=True,
        field_title_generator=_field_title,
    )


ParamsT = TypeVar("ParamsT", bound=BaseModel)


@dataclass(frozen=True)
class Outcome:
    """A successful run: a short message for people and optional small JSON ``data``."""

    message: str
    data: Mapping[str, Any] | None = None


# "Failure", not "Error": a failed run is a result the task reports on purpose.
class TaskFailure(Exception):  # noqa: N818
    """A failed run, with the exit code that tells the operator what to do next."""

    def __init__(
        self, message: str, exit_code: int = EXIT_RETRYABLE, data: Mapping[str, Any] | None = None
    ) -> None:
        if not 1 <= exit_code <= 255:
            raise ValueError(f"a failure's exit code must be from 1 to 255, not {exit_code}")
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.data = data


class RetryableFailure(TaskFailure):
    """A failure that may pass on its own (a timeout, a 503): exit 1, retried by the operator."""

    def __init__(self, message: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, EXIT_RETRYABLE, data)


class PermanentFailure(TaskFailure):
    """A failure that retrying cannot fix (bad configuration, a 404): exit 2, not retried."""

    def __init__(self, message: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, EXIT_PERMANENT, data)


@dataclass
class RunContext:
    """What a running task may use besides its params."""

    metadata: RunMetadata
    log: EventLog
    stop: StopRequest = field(default_factory=StopRequest)
    # The process environment, passed in so that tasks never read os.environ
    # behind the runner's back (and tests can hand them any environment).
    environ: Mapping[str, str] = field(default_factory=dict)


class Task(Protocol[ParamsT]):
    """The shape of a task; plain attributes satisfy the read-only members."""

    @property
    def name(self) -> str: ...

    @property
    def summary(self) -> str: ...

    @property
    def params_model(self) -> type[ParamsT]: ...

    def run(self, params: ParamsT, context: RunContext) -> Outcome: ...


@dataclass(frozen=True)
class FunctionTask(Generic[ParamsT]):
    """A task made from a function, as :func:`task` builds it."""

    name: str
    summary: str
    params_model: type[ParamsT]
    function: Callable[[ParamsT, RunContext], Outcome]

    def run(self, params: ParamsT, context: RunContext) -> Outcome:
        return self.function(params, context)


def task(
    name: str, *, params: type[ParamsT], summary: str | None = None
) -> Callable[[Callable[[ParamsT, RunContext], Outcome]], FunctionTask[ParamsT]]:
    """Make a task of a function ``(params, context) -> Outcome``.

    ``summary`` defaults to the first line of the function's docstring.
    """

    def wrap(function: Callable[[ParamsT, RunContext], Outcome]) -> FunctionTask[ParamsT]:
        doc = inspect.getdoc(function) or ""
        first_line = doc.strip().splitlines()[0] if doc.strip() else ""
        return FunctionTask(name, summary or first_line, params, function)

    return wrap
