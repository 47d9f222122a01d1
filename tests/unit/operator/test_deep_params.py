"""Params nested deeper than any task needs: measured without recursion, refused with a
message, and still decodable by the operator process up to the API server's limit."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import kopf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronfleet.kubeapi import KubeApi, UndecodableResponseError
from cronfleet.main import allow_deep_objects
from cronfleet.validation import MAX_PARAMS_DEPTH, nesting_depth, validate_spec

# At least as deep as anything the API server stores (its JSON decoder's limit).
API_SERVER_MAX_DEPTH = 10_000
TASKS = frozenset({"http", "command"})


def nested(depth: int) -> dict[str, Any]:
    """``depth`` levels of objects, built without recursion."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def deep_json(depth: int) -> str:
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.mark.parametrize(
    ("value", "depth"),
    [
        ("x", 0),
        (3, 0),
        (None, 0),
        ({}, 1),
        ([], 1),
        ({"url": "http://x"}, 1),
        ({"json": {"items": [{"id": 1}, {"id": 2}]}}, 4),
        ({"a": [], "b": {"c": {"d": [1]}}}, 4),
        ([[[[[]]]]], 5),
    ],
)
def test_nesting_depth(value: Any, depth: int) -> None:
    assert nesting_depth(value) == depth


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=2), children, max_size=3)
    ),
    max_leaves=20,
)


def recursive_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(recursive_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(recursive_depth, value), default=0)
    return 0


@given(json_values)
def test_nesting_depth_agrees_with_the_recursive_definition(value: Any) -> None:
    assert nesting_depth(value) == recursive_depth(value)


def test_nesting_depth_does_not_recurse() -> None:
    # Far deeper than the interpreter's recursion limit in this process.
    assert nesting_depth(nested(50 * sys.getrecursionlimit())) == 50 * sys.getrecursionlimit()


def spec(params: Any) -> dict[str, Any]:
    return {"cron": "0 2 * * *", "task": "http", "params": params}


def test_params_at_the_cap_are_valid() -> None:
    params = {"url": "http://x", "json": nested(MAX_PARAMS_DEPTH - 1)}
    parsed, problems = validate_spec(spec(params), TASKS)
    assert problems == []
    assert parsed is not None


@pytest.mark.parametrize("depth", [MAX_PARAMS_DEPTH + 1, 1_500, API_SERVER_MAX_DEPTH])
def test_deeper_params_are_refused_with_depth_and_cap(depth: int) -> None:
    def runner_check(task: str, params: Any) -> str | None:
        raise AssertionError("the runner's check must not walk params this deep")

    # The runner's check and the size are skipped: both would walk the whole object.
    parsed, problems = validate_spec(spec(nested(depth)), TASKS, runner_check)
    assert parsed is None
    assert [problem.message() for problem in problems] == [
        f"spec.params: an object nested {depth} levels deep is not valid: "
        f"params may nest objects and arrays at most {MAX_PARAMS_DEPTH} levels deep"
    ]


def test_the_operator_process_handles_the_deepest_stored_object() -> None:
    """After ``allow_deep_objects`` (as ``cronfleet-operator`` does at start-up), the
    deepest object the API server stores decodes, encodes and deep-copies in the main
    thread and in a new thread (kopf runs sync handlers in threads)."""
    script = textwrap.dedent(
        f"""
        import copy, json, threading
        from cronfleet.main import allow_deep_objects

        allow_deep_objects()
        text = '{{"a":' * {API_SERVER_MAX_DEPTH - 1} + '{{}}' + '}}' * {API_SERVER_MAX_DEPTH - 1}
        done = []

        def work():
            value = json.loads(text)
            assert json.dumps(value, separators=(",", ":")) == text
            copy.deepcopy(value)
            done.append(threading.current_thread().name)

        work()
        thread = threading.Thread(target=work, name="handler")
        thread.start()
        thread.join()
        print(",".join(done))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "MainThread,handler"


@pytest.fixture
def deep_objects_allowed() -> Iterator[None]:
    limit = sys.getrecursionlimit()
    allow_deep_objects()
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


async def answer_with(text: str) -> tuple[aiohttp.web.AppRunner, str]:
    async def handler(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(text=text, content_type="application/json")

    app = aiohttp.web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def request_through_kubeapi(text: str) -> Any:
    runner, server = await answer_with(text)

    async def login() -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server)

    api = KubeApi(login)
    try:
        return await api.request("PATCH", "/apis/x", {"status": {}})
    finally:
        await api.close()
        await runner.cleanup()


def test_kubeapi_decodes_the_deepest_stored_object(deep_objects_allowed: None) -> None:
    answer = asyncio.run(request_through_kubeapi(deep_json(API_SERVER_MAX_DEPTH)))
    assert nesting_depth(answer) == API_SERVER_MAX_DEPTH


def test_kubeapi_names_an_answer_too_deep_to_decode() -> None:
    depth = 2 * sys.getrecursionlimit()
    with pytest.raises(UndecodableResponseError, match="PATCH /apis/x: the answer is nested"):
        asyncio.run(request_through_kubeapi(deep_json(depth)))
