"""The runner contract, through the real ``cronfleet-runner`` program in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from tests.unit.runner.fake_distribution import write_fake_distribution
from tests.unit.runner.loopback import LoopbackServer

RUNNER = str(Path(sys.executable).parent / "cronfleet-runner")


@dataclass
class Run:
    exit_code: int
    events: list[dict[str, Any]]
    summary: dict[str, Any]
    stderr: str


def contract_env(tmp_path: Path, task: str, params: object = None, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CRONFLEET_TASK": task,
        "CRONFLEET_SCHEDULE": "tenant-acme/shopify-sync",
        "CRONFLEET_RUN": "shopify-sync-29123456",
        "CRONFLEET_TRIGGER": "Scheduled",
        "CRONFLEET_ATTEMPT": "0",
        "CRONFLEET_SCHEDULED_TIME": "2026-11-24T02:00:00Z",
        "CRONFLEET_TERMINATION_MESSAGE_PATH": str(tmp_path / "termination-log"),
        **extra,
    }
    if params is not None:
        env["CRONFLEET_PARAMS"] = params if isinstance(params, str) else json.dumps(params)
    return env


def json_lines(text: str) -> list[dict[str, Any]]:
    # Every line on stdout must be a JSON object: json.loads fails the test otherwise.
    return [json.loads(line) for line in text.splitlines()]


def run(tmp_path: Path, task: str, params: object = None, **extra: str) -> Run:
    done = subprocess.run(
        [RUNNER],
        env=contract_env(tmp_path, task, params, **extra),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    message = tmp_path / "termination-log"
    return Run(
        done.returncode,
        json_lines(done.stdout),
        json.loads(message.read_text()) if message.exists() else {},
        done.stderr,
    )


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNNER, *args],
        env=env or {"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_success_exits_zero_with_a_summary_and_json_logs(tmp_path: Path) -> None:
    done = run(tmp_path, "sleep", {"seconds": 0.05, "message": "synced 12 orders"})
    assert done.exit_code == 0
    assert done.summary == {"result": "Succeeded", "message": "synced 12 orders"}
    assert (tmp_path / "termination-log").read_text().count("\n") == 1
    assert done.events[0]["event"] == "run.started"
    assert done.events[-1]["event"] == "run.finished"
    for event in done.events:
        assert {"ts", "level", "event", "task", "schedule", "run", "trigger", "attempt"} <= set(
            event
        )
        assert (event["task"], event["schedule"], event["attempt"]) == (
            "sleep",
            "tenant-acme/shopify-sync",
            0,
        )
    assert done.stderr == ""


def test_a_retryable_failure_exits_one(tmp_path: Path) -> None:
    done = run(tmp_path, "sleep", {"exitCode": 1})
    assert done.exit_code == 1
    assert done.summary["result"] == "Failed"
    assert "failed with exit code 1" in done.summary["message"]


@pytest.mark.parametrize(
    ("task", "params", "expected"),
    [
        ("htpp", None, "Unknown task 'htpp' (did you mean 'http'?); this runner knows: command"),
        (
            "http",
            {"url": "sync.tenant-acme.svc/run"},
            "Invalid params for task 'http': params.url: Input should be a valid URL",
        ),
    ],
)
def test_a_permanent_failure_exits_two(
    tmp_path: Path, task: str, params: object, expected: str
) -> None:
    done = run(tmp_path, task, params)
    assert done.exit_code == 2
    assert done.summary["result"] == "Failed"
    assert done.summary["message"].startswith(expected)


def test_http_through_the_entrypoint(tmp_path: Path) -> None:
    server = LoopbackServer()
    try:
        done = run(
            tmp_path,
            "http",
            {"url": server.url("/json"), "method": "POST", "headersFromEnv": {"X-Key": "KEY"}},
            KEY="k-123",
        )
    finally:
        server.close()
    assert done.exit_code == 0
    assert done.summary["data"] == {"status": 200, "bytes": 24, "json": {"ok": True, "count": 3}}
    assert server.requests[0].headers["x-key"] == "k-123"


@dataclass
class Started:
    process: subprocess.Popen[str]
    events: list[dict[str, Any]]

    def wait_for(self, event: str, timeout: float = 10) -> dict[str, Any]:
        assert self.process.stdout is not None
        stream: IO[str] = self.process.stdout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = stream.readline()
            if not line:
                break
            self.events.append(json.loads(line))
            if self.events[-1]["event"] == event:
                return self.events[-1]
        raise AssertionError(f"no {event} event; saw {self.events}")


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    processes: list[subprocess.Popen[str]] = []

    def launch(task: str, params: object, **extra: str) -> Started:
        process = subprocess.Popen(
            [RUNNER],
            env=contract_env(tmp_path, task, params, **extra),
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        return Started(process, [])

    yield launch
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()


def test_sigterm_stops_the_task_reports_it_and_exits_143_promptly(
    tmp_path: Path, start: Any
) -> None:
    running: Started = start("sleep", {"seconds": 60})
    running.wait_for("sleep.waiting")
    sent = time.monotonic()
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=5) == 143
    assert time.monotonic() - sent < 2
    running.wait_for("run.finished")
    summary = json.loads((tmp_path / "termination-log").read_text())
    assert summary["result"] == "Failed"
    assert summary["message"].startswith("Terminated by SIGTERM after ")
    assert "while running task 'sleep'; the task was stopped" in summary["message"]
    assert summary["data"] == {"signal": "SIGTERM"}
    assert [e["event"] for e in running.events][-2:] == ["run.stopping", "run.finished"]


def test_a_task_that_ignores_sigterm_does_not_hold_the_exit(tmp_path: Path, start: Any) -> None:
    repository = str(Path(__file__).resolve().parents[3])
    running: Started = start(
        "python",
        {"callable": "tests.unit.runner.callables:ignores_stop"},
        PYTHONPATH=repository,
        CRONFLEET_STOP_GRACE_SECONDS="0.3",
    )
    running.wait_for("python.calling")
    sent = time.monotonic()
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=10) == 143
    assert time.monotonic() - sent < 2
    running.wait_for("run.finished")
    summary = json.loads((tmp_path / "termination-log").read_text())
    assert "the task did not stop within 0.3s and was abandoned" in summary["message"]


def test_sigterm_ends_a_commands_program_too(tmp_path: Path, start: Any) -> None:
    running: Started = start("command", {"argv": ["sleep", "60"]})
    child = running.wait_for("command.started")["pid"]
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=5) == 143
    # The runner reaped its child before exiting, so the pid is gone, not a zombie.
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    running.wait_for("run.finished")
    exited = [e for e in running.events if e["event"] == "command.exited"]
    assert exited and exited[0]["exitCode"] == -signal.SIGTERM


def test_a_plugin_distribution_adds_a_task(tmp_path: Path) -> None:
    site = write_fake_distribution(tmp_path / "site")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(site)}
    listed = json.loads(cli("--list", "--json", env=env).stdout)
    [plugin] = [task for task in listed["tasks"] if task["name"] == "acme-report"]
    assert plugin["origin"].endswith("of acme-cronfleet-tasks 1.2.0")
    assert plugin["paramsSchema"]["required"] == ["report"]

    params = {"report": "weekly", "recipients": ["ops@acme.test"]}
    done = run(tmp_path, "acme-report", params, PYTHONPATH=str(site))
    assert done.exit_code == 0
    assert done.summary == {
        "result": "Succeeded",
        "message": "sent weekly to 1",
        "data": {"sent": True},
    }
    assert any(e["event"] == "acme.report.sent" for e in done.events)
