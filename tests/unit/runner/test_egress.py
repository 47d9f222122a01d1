"""The http deny-list: the address check, and connections refused before they are made.

Nothing here leaves the machine: denied addresses are refused before any
socket connects (a process-wide audit hook records every connect to prove
it), and everything allowed is on loopback.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from cronfleet_runner.contract import EXIT_PERMANENT
from cronfleet_runner.egress import (
    DEFAULT_RULES,
    AddressDeniedError,
    DenyListError,
    Guard,
    denied_by,
    parse_deny_cidrs,
)
from cronfleet_runner.params import validate_params
from cronfleet_runner.task import Outcome, TaskFailure
from cronfleet_runner.tasks.http import HttpParams, http_task
from tests.unit.runner.conftest import ContextFactory, Recording
from tests.unit.runner.loopback import LoopbackServer
from tests.unit.runner.test_entrypoint import Run, run

METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


# -- recording every connection this process attempts ---------------------------------


# Audit hooks cannot be removed: this one records only while a test holds a list here.
_RECORDING: list[list[str]] = []
_RECORDING_LOCK = threading.Lock()


def _record_connects(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _RECORDING:
        with _RECORDING_LOCK:
            for record in _RECORDING:
                record.append(str(args[1][0]))


sys.addaudithook(_record_connects)


@pytest.fixture
def connects() -> Iterator[list[str]]:
    """Addresses this process passes to socket.connect during the test."""
    record: list[str] = []
    _RECORDING.append(record)
    try:
        yield record
    finally:
        _RECORDING.remove(record)


# -- the address check --------------------------------------------------------------


def rules(text: str | None = None) -> tuple[Any, ...]:
    return parse_deny_cidrs(text)


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("169.254.169.254", "169.254.169.254/32"),
        ("169.254.0.1", "169.254.0.0/16"),
        ("100.100.100.200", "100.100.100.200/32"),
        ("fd00:ec2::254", "fd00:ec2::254/128"),
        ("fe80::1", "fe80::/10"),
        ("fe80::1%eth0", "fe80::/10"),
        ("::ffff:169.254.169.254", "169.254.169.254/32"),  # IPv4-mapped
        ("64:ff9b::a9fe:a9fe", "169.254.169.254/32"),  # NAT64 of 169.254.169.254
    ],
)
def test_link_local_and_metadata_addresses_are_denied_by_default(
    address: str, network: str
) -> None:
    rule = denied_by(address, rules())
    assert rule is not None and str(rule.network) == network


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "::1", "10.96.0.1", "192.168.1.10", "8.8.8.8", "100.100.100.201"]
)
def test_loopback_private_and_public_addresses_are_allowed_by_default(address: str) -> None:
    assert denied_by(address, rules()) is None


def test_configured_cidrs_are_added_to_the_defaults() -> None:
    configured = rules("10.244.0.0/16, 10.96.0.0/12,127.0.0.1")
    assert set(DEFAULT_RULES) <= set(configured)
    for address in ("10.244.3.7", "10.100.0.1", "127.0.0.1"):
        rule = denied_by(address, configured)
        assert rule is not None and "CRONFLEET_HTTP_DENY_CIDRS" in rule.why
    assert denied_by("127.0.0.2", configured) is None


def test_none_drops_the_defaults_and_default_keeps_them() -> None:
    assert rules("none") == ()
    assert denied_by("169.254.169.254", rules("none")) is None
    only = rules("none,10.0.0.0/8")
    assert [str(rule.network) for rule in only] == ["10.0.0.0/8"]
    assert rules("default") == rules("") == rules(None) == DEFAULT_RULES
    assert rules("DEFAULT, 10.0.0.0/8")[: len(DEFAULT_RULES)] == DEFAULT_RULES


def test_host_bits_in_a_cidr_are_tolerated() -> None:
    [rule] = rules("none,10.1.2.3/8")
    assert rule.network == ipaddress.ip_network("10.0.0.0/8")


@pytest.mark.parametrize("text", ["10.0.0.0/33", "metadata", "none,default", "10.0.0.0/8;x"])
def test_a_setting_that_cannot_be_read_is_an_error_naming_the_variable(text: str) -> None:
    with pytest.raises(DenyListError, match="CRONFLEET_HTTP_DENY_CIDRS"):
        rules(text)


# -- connecting through the guard -----------------------------------------------------


def test_a_name_is_resolved_once_and_the_checked_address_is_the_one_connected(
    server: LoopbackServer, connects: list[str]
) -> None:
    port = int(server.url("/").rsplit(":", 1)[1].split("/")[0])
    answers = iter(
        [
            [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))],
            # A rebinding resolver's second answer: never asked for.
            [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))],
        ]
    )
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[tuple[Any, ...]]:
        asked.append(host)
        return next(answers)

    sock = Guard(rules(), resolver).create_connection(("sync.tenant-acme.svc", port), 5)
    sock.close()
    assert asked == ["sync.tenant-acme.svc"]
    assert connects == ["127.0.0.1"]


def test_a_name_with_any_denied_address_is_refused_before_connecting(
    connects: list[str],
) -> None:
    def resolver(host: str, port: int) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00:ec2::254", port, 0, 0)),
        ]

    with pytest.raises(AddressDeniedError) as refused:
        Guard(rules(), resolver).create_connection(("metadata.internal", 80), 5)
    assert refused.value.host == "metadata.internal"
    assert refused.value.address == "fd00:ec2::254"
    assert "fd00:ec2::254/128" in str(refused.value)
    assert connects == []


# -- the http task ----------------------------------------------------------------------


def params(**given: Any) -> HttpParams:
    validated = validate_params(HttpParams, given, "http")
    assert isinstance(validated, HttpParams)
    return validated


def failure(recording: Recording, **given: Any) -> TaskFailure:
    with pytest.raises(TaskFailure) as raised:
        http_task.run(params(**given), recording.context)
    return raised.value


def test_the_metadata_address_is_refused_permanently_without_a_connection(
    make_context: ContextFactory, connects: list[str]
) -> None:
    recording = make_context({})
    refused = failure(recording, url=METADATA_URL)
    assert refused.exit_code == EXIT_PERMANENT
    assert refused.message == (
        f"GET {METADATA_URL} was refused: the host 169.254.169.254 is 169.254.169.254, which "
        "the http deny-list forbids: rule 169.254.169.254/32 (cloud metadata service: AWS, "
        "Google Cloud, Azure, Oracle, DigitalOcean); no connection was made. The cluster's "
        "administrator sets the deny-list with the operator's CRONFLEET_HTTP_DENY_CIDRS."
    )
    assert refused.data == {
        "refusedHost": "169.254.169.254",
        "refusedAddress": "169.254.169.254",
        "rule": "169.254.169.254/32",
    }
    assert connects == []
    [event] = recording.events("http.refused")
    assert event["address"] == "169.254.169.254"


def test_https_to_a_denied_address_is_refused_before_any_handshake(
    make_context: ContextFactory, connects: list[str]
) -> None:
    refused = failure(make_context({}), url="https://[fd00:ec2::254]/latest/api/token")
    assert refused.exit_code == EXIT_PERMANENT
    assert "fd00:ec2::254/128 (cloud metadata service: AWS over IPv6)" in refused.message
    assert connects == []


def test_a_redirect_to_the_metadata_address_is_refused(
    server: LoopbackServer, make_context: ContextFactory, connects: list[str]
) -> None:
    recording = make_context({})
    url = server.url(f"/redirect-to?code=302&location={quote(METADATA_URL, safe='')}")
    refused = failure(recording, url=url)
    assert refused.exit_code == EXIT_PERMANENT
    assert "was refused after 1 redirect(s): the host 169.254.169.254" in refused.message
    assert [request.path for request in server.requests] == [urlpath(url)]
    assert connects == ["127.0.0.1"]  # the loopback server only


def urlpath(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_a_redirect_to_a_link_local_ipv6_address_is_refused(
    server: LoopbackServer, make_context: ContextFactory, connects: list[str]
) -> None:
    recording = make_context({})
    url = server.url(f"/redirect-to?code=307&location={quote('http://[fe80::1]:8080/', safe='')}")
    refused = failure(recording, url=url, method="POST", json={"a": 1})
    assert refused.exit_code == EXIT_PERMANENT
    assert "fe80::/10 (IPv6 link-local)" in refused.message
    assert connects == ["127.0.0.1"]


def test_loopback_is_allowed_by_default(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    outcome = http_task.run(params(url=server.url("/json")), make_context({}).context)
    assert isinstance(outcome, Outcome) and outcome.data and outcome.data["status"] == 200


def test_loopback_is_refused_when_configured(
    server: LoopbackServer, make_context: ContextFactory, connects: list[str]
) -> None:
    recording = make_context({"CRONFLEET_HTTP_DENY_CIDRS": "127.0.0.0/8,::1"})
    refused = failure(recording, url=server.url("/json"))
    assert refused.exit_code == EXIT_PERMANENT
    assert "127.0.0.0/8 (configured in CRONFLEET_HTTP_DENY_CIDRS)" in refused.message
    assert server.requests == [] and connects == []


def test_a_name_resolving_to_a_denied_address_is_refused(
    server: LoopbackServer, make_context: ContextFactory, connects: list[str]
) -> None:
    # localhost resolves to loopback, denied here as a configured range.
    recording = make_context({"CRONFLEET_HTTP_DENY_CIDRS": "127.0.0.0/8,::1/128"})
    port = server.url("/").rsplit(":", 1)[1].split("/")[0]
    refused = failure(recording, url=f"http://localhost:{port}/json")
    assert "the host localhost resolves to " in refused.message
    assert server.requests == [] and connects == []


def test_a_denied_address_is_refused_through_a_proxy_too(
    server: LoopbackServer,
    make_context: ContextFactory,
    connects: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The proxy would be asked for the address; the URL's address is checked first.
    proxy = server.url("/").rstrip("/")
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    refused = failure(make_context({}), url=METADATA_URL)
    assert refused.exit_code == EXIT_PERMANENT
    assert server.requests == [] and connects == []


def test_an_unreadable_setting_fails_the_run_before_anything_is_sent(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    recording = make_context({"CRONFLEET_HTTP_DENY_CIDRS": "10.0.0.0/8,cluster"})
    refused = failure(recording, url=server.url("/json"))
    assert refused.exit_code == EXIT_PERMANENT
    assert "'cluster' is none of these" in refused.message
    assert server.requests == []


def run_recording_connects(tmp_path: Path, url: str) -> tuple[Run, list[str]]:
    """The real runner in a subprocess whose every socket.connect is written to a file
    (by an audit hook installed before the runner starts)."""
    record = tmp_path / "connects"
    sitecustomize = tmp_path / "site" / "sitecustomize.py"
    sitecustomize.parent.mkdir(exist_ok=True)
    sitecustomize.write_text(
        "import sys\n"
        f"_record = {str(record)!r}\n"
        "def _hook(event, args):\n"
        "    if event == 'socket.connect':\n"
        "        with open(_record, 'a') as sink:\n"
        "            sink.write(str(args[1][0]) + '\\n')\n"
        "sys.addaudithook(_hook)\n"
    )
    result = run(tmp_path, "http", {"url": url}, PYTHONPATH=str(sitecustomize.parent))
    seen = record.read_text().split() if record.exists() else []
    return result, seen


def test_the_real_program_exits_2_and_attempts_no_connection(tmp_path: Path) -> None:
    result, seen = run_recording_connects(tmp_path, "http://169.254.169.254/latest/meta-data/")
    assert result.exit_code == EXIT_PERMANENT
    assert result.summary["result"] == "Failed"
    assert "169.254.169.254/32 (cloud metadata service" in result.summary["message"]
    assert seen == []
    assert json.dumps(result.events).count("http.refused") == 1


def test_the_connection_recorder_does_see_allowed_connections(
    tmp_path: Path, server: LoopbackServer
) -> None:
    # The control for the test above: an allowed call is recorded.
    result, seen = run_recording_connects(tmp_path, server.url("/json"))
    assert result.exit_code == 0
    assert seen == ["127.0.0.1"]
