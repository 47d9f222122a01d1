"""The one registry of tasks: the built-in ones and those of installed plugins.

Plugins register under the ``cronfleet.tasks`` entry-point group; the entry
point's name is the task's name and its value points at a task object (or a
class whose instances are tasks)::

    [project.entry-points."cronfleet.tasks"]
    report = "acme_tasks.report:report"

Plugins are loaded lazily: a run imports only the plugin of its own task, so
a broken plugin breaks its own task and nothing else. Built-in names are
reserved, because the operator validates Schedules against the built-in
tasks' params schemas (:func:`builtin_task_schemas`).
"""

from __future__ import annotations

import difflib
import importlib.metadata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from cronfleet_runner.contract import ENV_TASK
from cronfleet_runner.params import InvalidParams, validate_params
from cronfleet_runner.summary import clip
from cronfleet_runner.task import Outcome, PermanentFailure, RunContext, Task
from cronfleet_runner.tasks import BUILTIN_TASKS

ENTRY_POINT_GROUP = "cronfleet.tasks"
BUILTIN_ORIGIN = "built-in"

EntryPointSource = Callable[[], Iterable[importlib.metadata.EntryPoint]]


class UnknownTask(PermanentFailure):
    """No built-in task and no installed plugin has this name."""


class TaskLoadError(PermanentFailure):
    """A plugin's entry point exists but does not give a usable task."""

    def __init__(self, name: str, origin: str, problem: str) -> None:
        super().__init__(f"Task '{name}' from {origin} cannot be used: {problem}")
        self.name = name
        self.origin = origin


@dataclass(frozen=True)
class RegisteredTask:
    """A task as the runner uses it, whatever shape it was registered in."""

    name: str
    summary: str
    params_model: type[BaseModel]
    run: Callable[[Any, RunContext], Outcome]
    origin: str

    @property
    def builtin(self) -> bool:
        return self.origin == BUILTIN_ORIGIN

    def params_schema(self) -> dict[str, Any]:
        return self.params_model.model_json_schema(by_alias=True)

    def validate(self, params: object) -> BaseModel:
        return validate_params(self.params_model, params, self.name)


def registered(candidate: object, name: str, origin: str) -> RegisteredTask:
    """Check that ``candidate`` is a task called ``name`` and wrap it; TaskLoadError if not."""
    if isinstance(candidate, type):
        try:
            candidate = candidate()
        except Exception as error:
            raise TaskLoadError(
                name, origin, f"its class could not be instantiated without arguments: {error!r}"
            ) from error
    task_name = getattr(candidate, "name", None)
    if task_name != name:
        raise TaskLoadError(
            name,
            origin,
            f"the object's name is {task_name!r}; the entry point's name and the task's "
            "name attribute must be the same",
        )
    model = getattr(candidate, "params_model", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TaskLoadError(
            name, origin, f"params_model must be a pydantic model class, not {model!r}"
        )
    if model.model_config.get("extra") != "forbid":
        raise TaskLoadError(
            name,
            origin,
            f"params model {model.__name__} must forbid unknown params: subclass "
            "cronfleet_runner.TaskParams or set model_config = ConfigDict(extra='forbid')",
        )
    run = getattr(candidate, "run", None)
    if not callable(run):
        raise TaskLoadError(name, origin, "it has no run(params, context) method")
    summary = getattr(candidate, "summary", "")
    return RegisteredTask(
        name=name,
        summary=summary if isinstance(summary, str) else "",
        params_model=model,
        run=run,
        origin=origin,
    )


def discover_entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def describe_entry_point(entry_point: importlib.metadata.EntryPoint) -> str:
    where = f"entry point '{entry_point.name} = {entry_point.value}'"
    dist = entry_point.dist
    if dist is not None:
        where += f" of {dist.name} {dist.version}"
    return where


class Registry:
    def __init__(
        self,
        builtins: Iterable[Task[Any]],
        entry_points: EntryPointSource = discover_entry_points,
    ) -> None:
        self._builtins = {
            task.name: registered(task, task.name, BUILTIN_ORIGIN) for task in builtins
        }
        self._entry_point_source = entry_points
        self._plugin_entry_points: dict[str, list[importlib.metadata.EntryPoint]] | None = None

    def _plugins(self) -> dict[str, list[importlib.metadata.EntryPoint]]:
        if self._plugin_entry_points is None:
            found: dict[str, list[importlib.metadata.EntryPoint]] = {}
            seen: set[tuple[str, str]] = set()
            for entry_point in self._entry_point_source():
                # The same distribution can be visible twice on sys.path
                # (an editable install, a copied site-packages): that is one task.
                key = (entry_point.name, entry_point.value)
                if key in seen:
                    continue
                seen.add(key)
                found.setdefault(entry_point.name, []).append(entry_point)
            self._plugin_entry_points = found
        return self._plugin_entry_points

    def builtin_tasks(self) -> list[RegisteredTask]:
        return [self._builtins[name] for name in sorted(self._builtins)]

    def names(self) -> list[str]:
        """Every task name this runner answers to, without importing any plugin."""
        return sorted(set(self._builtins) | set(self._plugins()))

    def get(self, name: str) -> RegisteredTask:
        if not name:
            raise UnknownTask(
                f"{ENV_TASK} is not set; it must name a task, one of: {', '.join(self.names())}."
            )
        if name in self._builtins:
            return self._builtins[name]
        entry_points = self._plugins().get(name)
        if not entry_points:
            known = self.names()
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UnknownTask(
                f"Unknown task '{clip(name, 80)}'{hint}; this runner knows: {', '.join(known)}. "
                f"Use one of them, or install a package that registers '{clip(name, 80)}' in "
                f"the '{ENTRY_POINT_GROUP}' entry-point group."
            )
        return self._load(name, entry_points)

    def _load(
        self, name: str, entry_points: Sequence[importlib.metadata.EntryPoint]
    ) -> RegisteredTask:
        if len(entry_points) > 1:
            origins = " and ".join(describe_entry_point(ep) for ep in entry_points)
            raise TaskLoadError(
                name, "several plugins", f"it is registered by {origins}; uninstall all but one"
            )
        entry_point = entry_points[0]
        origin = describe_entry_point(entry_point)
        try:
            loaded = entry_point.load()
        except Exception as error:
            raise TaskLoadError(
                name, origin, f"importing it failed with {type(error).__name__}: {error}"
            ) from error
        return registered(loaded, name, origin)

    def load_all(self) -> tuple[list[RegisteredTask], list[TaskLoadError]]:
        """Every task, loading every plugin; the errors of plugins that cannot be used."""
        tasks = self.builtin_tasks()
        errors: list[TaskLoadError] = []
        for name, entry_points in sorted(self._plugins().items()):
            if name in self._builtins:
                for entry_point in entry_points:
                    errors.append(
                        TaskLoadError(
                            name,
                            describe_entry_point(entry_point),
                            f"'{name}' is a built-in task and its name is reserved; "
                            "register the plugin under another name",
                        )
                    )
                continue
            try:
                tasks.append(self._load(name, entry_points))
            except TaskLoadError as error:
                errors.append(error)
        tasks.sort(key=lambda task: task.name)
        return tasks, errors


def builtin_registry() -> Registry:
    """The built-in tasks only: what every runner image has, whatever else is installed."""
    return Registry(BUILTIN_TASKS, entry_points=list)


def default_registry() -> Registry:
    """The built-in tasks and every installed plugin."""
    return Registry(BUILTIN_TASKS)


def builtin_task_schemas() -> dict[str, dict[str, Any]]:
    """Built-in task name -> JSON schema of its params (camelCase names, as in a Schedule).

    Pure: imports the task modules, runs nothing, needs no network. This is
    what the operator validates a Schedule's ``spec.task`` and ``spec.params``
    against.
    """
    return {task.name: task.params_schema() for task in builtin_registry().builtin_tasks()}


def validate_builtin_params(task_name: str, params: object) -> str | None:
    """None when ``params`` suit the built-in task; otherwise the runner's own message for it.

    Gives the same sentence the runner would exit 2 with, so the operator can
    show it in a Schedule's status before any pod runs.
    """
    try:
        builtin_registry().get(task_name).validate(params)
    except (UnknownTask, InvalidParams) as problem:
        return problem.message
    return None
