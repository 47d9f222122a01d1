"""Fixtures of the runner's unit tests: a loopback HTTP server and a recording run context."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from cronfleet_runner.contract import RunMetadata
from cronfleet_runner.eventlog import EventLog
from cronfleet_runner.task import RunContext
from tests.unit.runner.loopback import LoopbackServer

METADATA = RunMetadata(
    task="test",
    schedule="tenant-acme/shopify-sync",
    run="shopify-sync-29123456",
    trigger="Scheduled",
    attempt=0,
    scheduled_time="2026-11-24T02:00:00Z",
)


@dataclass
class Recording:
    """A run context whose log lines are kept for the test to read."""

    context: RunContext
    stream: io.StringIO

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stream.getvalue().splitlines()]
        return [line for line in lines if name is None or line["event"] == name]


ContextFactory = Callable[..., Recording]


@pytest.fixture
def make_context() -> ContextFactory:
    def make(environ: Mapping[str, str] | None = None) -> Recording:
        stream = io.StringIO()
        context = RunContext(
            metadata=METADATA,
            log=EventLog(stream, METADATA),
            environ=dict(environ if environ is not None else {"PATH": "/usr/bin:/bin"}),
        )
        return Recording(context, stream)

    return make


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    running = LoopbackServer()
    yield running
    running.close()


@pytest.fixture
def other_server() -> Iterator[LoopbackServer]:
    """A second server: another origin, for cross-origin redirects."""
    running = LoopbackServer()
    yield running
    running.close()


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib honours *_proxy variables; loopback calls must not go through one.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
