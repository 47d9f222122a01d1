"""The ``http`` task against a real HTTP server on loopback."""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import quote

import pytest

from cronfleet_runner.contract import EXIT_PERMANENT, EXIT_RETRYABLE
from cronfleet_runner.params import InvalidParams, validate_params
from cronfleet_runner.task import Outcome, TaskFailure
from cronfleet_runner.tasks.http import HttpParams, http_task
from tests.unit.runner.conftest import ContextFactory, Recording
from tests.unit.runner.loopback import LoopbackServer


def params(**given: Any) -> HttpParams:
    validated = validate_params(HttpParams, given, "http")
    assert isinstance(validated, HttpParams)
    return validated


def call(recording: Recording, **given: Any) -> Outcome:
    return http_task.run(params(**given), recording.context)


def failure(recording: Recording, **given: Any) -> TaskFailure:
    with pytest.raises(TaskFailure) as raised:
        call(recording, **given)
    return raised.value


def test_a_2xx_response_succeeds_with_status_and_body_excerpt(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    recording = make_context()
    outcome = call(recording, url=server.url("/json"))
    assert outcome.message.startswith(f"GET {server.url('/json')} returned 200 OK after ")
    assert '{"ok": true, "count": 3}' in outcome.message
    assert outcome.data == {"status": 200, "bytes": 24, "json": {"ok": True, "count": 3}}
    [response] = recording.events("http.response")
    assert response["status"] == 200


def test_post_sends_json_body_literal_headers_and_headers_from_env(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    recording = make_context({"API_AUTHORIZATION": "Bearer s3cret"})
    outcome = call(
        recording,
        url=server.url("/echo"),
        method="post",
        headers={"X-Tenant": "acme"},
        headersFromEnv={"Authorization": "API_AUTHORIZATION"},
        json={"source": "shopify", "full": False},
    )
    assert outcome.data is not None
    echoed = outcome.data["json"]
    assert echoed["method"] == "POST"
    assert json.loads(echoed["body"]) == {"source": "shopify", "full": False}
    assert echoed["headers"]["content-type"] == "application/json"
    assert echoed["headers"]["x-tenant"] == "acme"
    assert echoed["headers"]["authorization"] == "Bearer s3cret"
    assert echoed["headers"]["user-agent"].startswith("cronfleet-runner/")
    # The credential is sent, never logged.
    assert "s3cret" not in recording.stream.getvalue()


def test_text_body_is_sent_as_utf8_text(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    outcome = call(make_context(), url=server.url("/echo"), method="PUT", body="héllo")
    assert outcome.data is not None
    echoed = outcome.data["json"]
    assert echoed["body"] == "héllo"
    assert echoed["headers"]["content-type"] == "text/plain; charset=utf-8"


def test_a_header_variable_that_is_not_set_is_a_permanent_failure_naming_it(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    failed = failure(
        make_context({}), url=server.url("/echo"), headersFromEnv={"Authorization": "API_TOKEN"}
    )
    assert failed.exit_code == EXIT_PERMANENT
    assert "params.headersFromEnv.Authorization" in failed.message
    assert "API_TOKEN, which is not set" in failed.message
    assert server.requests == []


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (500, "Internal Server Error"),
        (503, "Service Unavailable"),
        (429, "Too Many Requests"),
        (408, "Request Timeout"),
    ],
)
def test_5xx_429_and_408_are_retryable(
    server: LoopbackServer, make_context: ContextFactory, status: int, reason: str
) -> None:
    failed = failure(make_context(), url=server.url(f"/status/{status}"))
    assert failed.exit_code == EXIT_RETRYABLE
    assert f"returned {status} {reason}" in failed.message
    assert "a retryable status (params.retryableStatus: 408, 429, 5xx)" in failed.message
    assert f"body: status {status}" in failed.message
    assert failed.data is not None and failed.data["status"] == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_are_permanent(
    server: LoopbackServer, make_context: ContextFactory, status: int
) -> None:
    failed = failure(make_context(), url=server.url(f"/status/{status}"))
    assert failed.exit_code == EXIT_PERMANENT
    assert f"returned {status} " in failed.message
    assert "neither expected (params.expectedStatus: 2xx) nor retryable" in failed.message


def test_expected_and_retryable_statuses_can_be_chosen(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    gone = call(make_context(), url=server.url("/status/404"), expectedStatus=[404, "2xx"])
    assert gone.data is not None and gone.data["status"] == 404
    failed = failure(make_context(), url=server.url("/status/503"), retryableStatus=[])
    assert failed.exit_code == EXIT_PERMANENT
    failed = failure(make_context(), url=server.url("/status/200"), expectedStatus=["201"])
    assert failed.exit_code == EXIT_PERMANENT


def test_a_slow_response_times_out_as_a_retryable_failure(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    started = time.monotonic()
    failed = failure(make_context(), url=server.url("/slow/10"), timeoutSeconds=0.3)
    assert time.monotonic() - started < 2
    assert failed.exit_code == EXIT_RETRYABLE
    assert "timed out" in failed.message
    assert "params.timeoutSeconds=0.3s" in failed.message


def test_the_timeout_bounds_a_body_that_keeps_dribbling_in(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    # Every byte arrives well within the timeout; the whole body does not.
    started = time.monotonic()
    failed = failure(make_context(), url=server.url("/dribble/5"), timeoutSeconds=0.3)
    assert time.monotonic() - started < 2
    assert failed.exit_code == EXIT_RETRYABLE
    assert "timed out" in failed.message


@pytest.mark.parametrize("route", ["big", "big-unsized"])
def test_a_body_over_the_cap_is_a_permanent_failure(
    server: LoopbackServer, make_context: ContextFactory, route: str
) -> None:
    failed = failure(
        make_context(), url=server.url(f"/{route}/{5 * 1024 * 1024}"), maxResponseBytes=1000
    )
    assert failed.exit_code == EXIT_PERMANENT
    assert "body is larger than params.maxResponseBytes=1000 bytes" in failed.message


def test_a_body_of_exactly_the_cap_is_read_whole(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    outcome = call(make_context(), url=server.url("/big-unsized/1000"), maxResponseBytes=1000)
    assert outcome.data is not None and outcome.data["bytes"] == 1000


def test_redirects_are_followed_up_to_the_limit(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    recording = make_context()
    outcome = call(recording, url=server.url("/redirect/3"))
    assert outcome.data == {
        "status": 200,
        "bytes": 7,
        "redirects": 3,
        "url": server.url("/redirect/0"),
    }
    assert len(recording.events("http.redirect")) == 3

    failed = failure(make_context(), url=server.url("/redirect/4"), maxRedirects=3)
    assert failed.exit_code == EXIT_PERMANENT
    assert "redirected more than params.maxRedirects=3 times" in failed.message


def test_without_following_a_redirect_is_judged_by_its_status(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    failed = failure(make_context(), url=server.url("/redirect/1"), followRedirects=False)
    assert failed.exit_code == EXIT_PERMANENT
    assert "returned 302 Found" in failed.message
    outcome = call(
        make_context(), url=server.url("/redirect/1"), followRedirects=False, expectedStatus=[302]
    )
    assert outcome.data is not None and outcome.data["status"] == 302


def test_303_turns_a_post_into_a_get_and_307_repeats_it(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    for code, method, body in ((303, "GET", ""), (307, "POST", '{"n": 1}')):
        url = server.url(f"/redirect-to?code={code}&location=/echo")
        outcome = call(make_context(), url=url, method="POST", json={"n": 1})
        assert outcome.data is not None
        assert (outcome.data["json"]["method"], outcome.data["json"]["body"]) == (method, body)


def test_credentials_are_not_sent_to_another_origin(
    server: LoopbackServer, other_server: LoopbackServer, make_context: ContextFactory
) -> None:
    environ = {"TOKEN": "Bearer s3cret", "TENANT": "acme"}
    given = {"headersFromEnv": {"Authorization": "TOKEN", "X-Tenant": "TENANT"}}
    same = server.url(f"/redirect-to?location={quote(server.url('/echo'))}")
    outcome = call(make_context(environ), url=same, **given)
    assert outcome.data is not None
    assert outcome.data["json"]["headers"]["authorization"] == "Bearer s3cret"

    elsewhere = server.url(f"/redirect-to?location={quote(other_server.url('/echo'))}")
    outcome = call(make_context(environ), url=elsewhere, headers={"X-Trace": "1"}, **given)
    assert outcome.data is not None
    headers = outcome.data["json"]["headers"]
    assert "authorization" not in headers
    assert "x-tenant" not in headers
    assert headers["x-trace"] == "1"


def test_a_redirect_to_another_scheme_is_refused(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    url = server.url(f"/redirect-to?location={quote('ftp://example.com/file')}")
    failed = failure(make_context(), url=url)
    assert failed.exit_code == EXIT_PERMANENT
    assert "not an http or https URL" in failed.message


def test_a_refused_connection_is_retryable(make_context: ContextFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    failed = failure(make_context(), url=f"http://127.0.0.1:{port}/")
    assert failed.exit_code == EXIT_RETRYABLE
    assert f"GET http://127.0.0.1:{port}/ failed before a response arrived" in failed.message
    assert "refused" in failed.message.lower()


def test_head_reads_no_body(server: LoopbackServer, make_context: ContextFactory) -> None:
    outcome = call(make_context(), url=server.url("/json"), method="HEAD")
    assert outcome.data == {"status": 200, "bytes": 0}
    assert server.requests[0].method == "HEAD"


def test_user_info_in_the_url_is_not_repeated_in_messages(
    server: LoopbackServer, make_context: ContextFactory
) -> None:
    url = server.url("/status/404").replace("127.0.0.1", "user:pa55@127.0.0.1")
    failed = failure(make_context(), url=url)
    assert "pa55" not in failed.message
    assert server.url("/status/404") in failed.message


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"url": "not a url"}, "params.url: Input should be a valid URL"),
        (
            {"url": "ftp://x"},
            "params.url: URL scheme should be 'http' or 'https' (got \"ftp://x\")",
        ),
        ({"url": "http://x", "method": "FETCH"}, "params.method: Input should be "),
        (
            {"url": "http://x", "timeoutSeconds": 0},
            "params.timeoutSeconds: Input should be greater",
        ),
        (
            {"url": "http://x", "expectedStatus": [200, 99]},
            "params.expectedStatus[1]: a status must be a code from 100 to 599",
        ),
        ({"url": "http://x", "headers": {"Bad Name": "v"}}, "is not a valid HTTP header name"),
        ({"url": "http://x", "headers": {"X": "a\r\nInjected: 1"}}, "cannot contain line breaks"),
        (
            {"url": "http://x", "headersFromEnv": {"Authorization": "api-token"}},
            "'api-token' is not an environment variable name",
        ),
        ({"url": "http://x", "json": {}, "body": "x"}, "params.json and params.body cannot both"),
        (
            {
                "url": "http://x",
                "headers": {"authorization": "x"},
                "headersFromEnv": {"Authorization": "T"},
            },
            "is in both params.headers and params.headersFromEnv",
        ),
        (
            {"url": "http://x", "timeout": 3},
            "params.timeout is not a param of task 'http' (did you mean timeoutSeconds?)",
        ),
    ],
)
def test_invalid_params_are_named_in_the_message(given: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidParams) as raised:
        params(**given)
    assert raised.value.exit_code == EXIT_PERMANENT
    assert raised.value.message.startswith("Invalid params for task 'http': ")
    assert expected in raised.value.message
