"""The task registry: built-in tasks, plugins through entry points, and the operator's view."""

from __future__ import annotations

import importlib
import importlib.metadata
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cronfleet_runner.contract import EXIT_PERMANENT
from cronfleet_runner.eventlog import EventLog
from cronfleet_runner.registry import (
    ENTRY_POINT_GROUP,
    Registry,
    TaskLoadError,
    UnknownTask,
    builtin_task_schemas,
    default_registry,
    validate_builtin_params,
)
from cronfleet_runner.task import RunContext
from cronfleet_runner.tasks import BUILTIN_TASKS
from tests.unit.runner.conftest import METADATA
from tests.unit.runner.fake_distribution import write_fake_distribution

BUILTIN_NAMES = {"command", "http", "python", "sleep"}
PLUGINS = "tests.unit.runner.plugin_tasks"


def entry_point(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def registry_with(*entry_points: importlib.metadata.EntryPoint) -> Registry:
    return Registry(BUILTIN_TASKS, entry_points=lambda: list(entry_points))


def test_the_builtin_schemas_describe_every_builtin_task_in_schedule_terms() -> None:
    schemas = builtin_task_schemas()
    assert set(schemas) == BUILTIN_NAMES
    http = schemas["http"]
    assert http["required"] == ["url"]
    assert http["additionalProperties"] is False
    assert {"timeoutSeconds", "headersFromEnv", "expectedStatus", "json"} <= set(http["properties"])
    assert http["properties"]["timeoutSeconds"]["exclusiveMinimum"] == 0
    assert schemas["command"]["required"] == ["argv"]
    assert schemas["sleep"]["properties"]["exitCode"]["maximum"] == 255
    for name, schema in schemas.items():
        assert schema["type"] == "object", name
        assert schema["additionalProperties"] is False, name
        for field, spec in schema["properties"].items():
            assert spec.get("description"), f"{name}.{field} has no description"
        json.dumps(schema)


def test_builtin_schemas_ignore_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    def plugins(group: str) -> list[importlib.metadata.EntryPoint]:
        return [entry_point("greet", f"{PLUGINS}:greet")]

    monkeypatch.setattr(importlib.metadata, "entry_points", plugins)
    assert "greet" in default_registry().names()
    assert set(builtin_task_schemas()) == BUILTIN_NAMES


def test_validate_builtin_params_gives_the_runners_message() -> None:
    assert validate_builtin_params("http", {"url": "https://sync.tenant-acme.svc/run"}) is None
    assert validate_builtin_params("sleep", {}) is None
    message = validate_builtin_params("http", {"url": "https://x", "method": "FETCH"})
    assert message is not None and message.startswith("Invalid params for task 'http': ")
    assert "params.method" in message
    unknown = validate_builtin_params("htp", {})
    assert unknown is not None and "Unknown task 'htp' (did you mean 'http'?)" in unknown
    not_object = validate_builtin_params("sleep", [])
    assert not_object is not None and "params must be a JSON object" in not_object


def test_an_unknown_task_is_permanent_and_lists_the_known_ones() -> None:
    registry = registry_with(entry_point("greet", f"{PLUGINS}:greet"))
    with pytest.raises(UnknownTask) as raised:
        registry.get("sleeep")
    assert raised.value.exit_code == EXIT_PERMANENT
    assert raised.value.message.startswith("Unknown task 'sleeep' (did you mean 'sleep'?)")
    assert "this runner knows: command, greet, http, python, sleep." in raised.value.message
    with pytest.raises(UnknownTask, match="CRONFLEET_TASK is not set"):
        registry.get("")


def test_a_plugin_function_task_is_found_by_its_entry_point_name() -> None:
    registry = registry_with(entry_point("greet", f"{PLUGINS}:greet"))
    greet = registry.get("greet")
    assert greet.summary == "Say hello to someone."
    assert greet.origin == f"entry point 'greet = {PLUGINS}:greet'"
    assert not greet.builtin
    params = greet.validate({"who": "ops", "loud": True})
    context = RunContext(METADATA, EventLog(io.StringIO(), METADATA))
    assert greet.run(params, context).message == "HELLO OPS"


def test_a_plugin_class_is_instantiated() -> None:
    export = registry_with(entry_point("export", f"{PLUGINS}:Export")).get("export")
    assert export.summary == "Export a table."
    assert export.params_schema()["required"] == ["table"]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            entry_point("misnamed", f"{PLUGINS}:misnamed"),
            "the object's name is 'other-name'; the entry point's name and the task's name",
        ),
        (entry_point("loose", f"{PLUGINS}:loose"), "LooseParams must forbid unknown params"),
        (
            entry_point("gone", "tests.unit.runner.no_such_module:task"),
            "importing it failed with ModuleNotFoundError: No module named",
        ),
        (entry_point("nothing", f"{PLUGINS}:NoModel"), "params_model must be a pydantic"),
    ],
)
def test_a_broken_plugin_is_a_permanent_failure_of_its_own_task(
    entry: importlib.metadata.EntryPoint, problem: str
) -> None:
    registry = registry_with(entry, entry_point("greet", f"{PLUGINS}:greet"))
    with pytest.raises(TaskLoadError) as raised:
        registry.get(entry.name)
    assert raised.value.exit_code == EXIT_PERMANENT
    assert raised.value.message.startswith(f"Task '{entry.name}' from entry point")
    assert problem in raised.value.message
    # Other tasks do not suffer from it.
    assert registry.get("greet").name == "greet"
    assert registry.get("sleep").builtin
    tasks, errors = registry.load_all()
    assert [task.name for task in tasks] == ["command", "greet", "http", "python", "sleep"]
    assert [error.name for error in errors] == [entry.name]


def test_a_plugin_cannot_take_a_builtin_name() -> None:
    registry = registry_with(entry_point("http", f"{PLUGINS}:impostor"))
    assert registry.get("http").builtin
    tasks, errors = registry.load_all()
    assert [task.name for task in tasks if task.name == "http"] == ["http"]
    [error] = errors
    assert "'http' is a built-in task and its name is reserved" in error.message


def test_two_plugins_with_one_name_are_refused_but_one_seen_twice_is_one() -> None:
    twice = entry_point("greet", f"{PLUGINS}:greet")
    assert registry_with(twice, twice).get("greet").name == "greet"
    other = entry_point("greet", f"{PLUGINS}:Export")
    with pytest.raises(TaskLoadError, match="it is registered by entry point 'greet = "):
        registry_with(twice, other).get("greet")


def test_plugins_are_imported_only_when_their_task_runs() -> None:
    module = "tests.unit.runner.lazy_plugin"
    sys.modules.pop(module, None)
    registry = registry_with(entry_point("lazy", f"{module}:lazy"))
    assert "lazy" in registry.names()
    registry.get("sleep")
    assert module not in sys.modules
    registry.get("lazy")
    assert module in sys.modules


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = write_fake_distribution(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    yield root
    sys.modules.pop("acme_cronfleet_tasks", None)


def test_an_installed_distribution_registers_its_task(installed_plugin: Path) -> None:
    registry = default_registry()
    assert "acme-report" in registry.names()
    report = registry.get("acme-report")
    assert report.origin == (
        "entry point 'acme-report = acme_cronfleet_tasks:report' of acme-cronfleet-tasks 1.2.0"
    )
    assert report.summary == "Send one of ACME's reports by e-mail."
