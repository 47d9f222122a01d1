"""``cronfleet-runner --list`` and ``--check``, called in-process."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from cronfleet_runner.main import run
from cronfleet_runner.registry import ENTRY_POINT_GROUP, Registry
from cronfleet_runner.tasks import BUILTIN_TASKS

BUILTIN_NAMES = ("command", "http", "python", "sleep")


def registry_with(*plugins: tuple[str, str]) -> Registry:
    entry_points = [
        importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)
        for name, value in plugins
    ]
    return Registry(BUILTIN_TASKS, entry_points=lambda: entry_points)


def test_list_shows_every_task_with_its_params_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--list"], registry_with()) == (0, False)
    out = capsys.readouterr().out
    for name in BUILTIN_NAMES:
        assert f"\n{name}  (built-in)\n" in f"\n{out}"
    assert out.count("params schema:") == 4
    assert '"timeoutSeconds": {' in out
    assert "Call an HTTP endpoint; the status code decides success" in out


def test_list_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    registry = registry_with(("greet", "tests.unit.runner.plugin_tasks:greet"))
    assert run(["--list", "--json"], registry) == (0, False)
    listed = json.loads(capsys.readouterr().out)
    tasks = {task["name"]: task for task in listed["tasks"]}
    assert list(tasks) == ["command", "greet", "http", "python", "sleep"]
    assert tasks["http"]["paramsSchema"]["required"] == ["url"]
    assert tasks["greet"]["origin"] == "entry point 'greet = tests.unit.runner.plugin_tasks:greet'"
    assert listed["errors"] == []


def test_a_plugin_that_cannot_load_fails_list(capsys: pytest.CaptureFixture[str]) -> None:
    registry = registry_with(("report", "acme_missing.report:task"))
    assert run(["--list"], registry) == (1, False)
    captured = capsys.readouterr()
    assert "sleep  (built-in)" in captured.out
    assert captured.err.startswith(
        "cronfleet-runner: Task 'report' from entry point 'report = acme_missing.report:task' "
        "cannot be used: importing it failed with ModuleNotFoundError"
    )


def test_check_accepts_valid_params_without_running(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRONFLEET_TASK", "sleep")
    monkeypatch.setenv("CRONFLEET_PARAMS", '{"seconds": 3600}')
    assert run(["--check"], registry_with()) == (0, False)
    assert capsys.readouterr().out == "Task 'sleep' accepts these params.\n"


def test_check_rejects_invalid_params_with_exit_two(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRONFLEET_TASK", "sleep")
    # --task and --params override the environment.
    assert run(["--check", "--task", "http", "--params", '{"url": 1}'], registry_with()) == (
        2,
        False,
    )
    assert capsys.readouterr().err.startswith("Invalid params for task 'http': params.url")

    assert run(["--check", "--json", "--task", "nope"], registry_with()) == (2, False)
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["valid"] is False
    assert verdict["message"].startswith("Unknown task 'nope'")
