"""The dashboard's application on a free loopback port: guards, headers, escaping, flags.

Its session points at an API server that is not there (a closed loopback
port); the pages under test read Schedules put into the watch's cache.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import kubernetes.client
import pytest
from aiohttp import web

from cronfleet.plugin.dashboard import server
from cronfleet.plugin.kubeconfig import Session

Check = Callable[[aiohttp.ClientSession, str, web.Application], Awaitable[None]]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def session() -> Session:
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://127.0.0.1:{closed_port()}"
    configuration.retries = False
    return Session(kubernetes.client.ApiClient(configuration), "acme", "unit")


SCHEDULE: dict[str, Any] = {
    "apiVersion": "cronfleet.io/v1alpha1",
    "kind": "Schedule",
    "metadata": {
        "name": "sync",
        "namespace": "acme",
        "resourceVersion": "5",
        "annotations": {"cronfleet.io/pause": "<script>alert(1)</script>"},
    },
    "spec": {"cron": "0 2 * * *", "task": "command"},
    "status": {
        "phase": "Paused",
        "history": [
            {"job": "sync-1", "trigger": "Manual", "result": "Failed", "message": "<b>bold</b>"}
        ],
    },
}


def serve(check: Check) -> None:
    async def main() -> None:
        app = server.build_app(session(), "acme", long_poll_seconds=0.5)
        runner, url = await server.start(app, 0)
        try:
            app[server.DASHBOARD].cache.reset([SCHEDULE])
            # unsafe: keep cookies of an IP address (127.0.0.1), as browsers do.
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as client:
                await check(client, url, app)
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_it_listens_on_loopback_and_answers_only_its_own_host() -> None:
    async def check(client: aiohttp.ClientSession, url: str, app: web.Application) -> None:
        assert url.startswith("http://127.0.0.1:")
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        async with client.get(url) as page:
            assert page.status == 200
            assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
        async with client.get(f"http://localhost:{port}/static/htmx.min.js") as script:
            assert script.status == 200
            assert script.headers["X-Content-Type-Options"] == "nosniff"
        for host in (f"rebind.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1"):
            async with client.get(url, headers={"Host": host}) as refused:
                assert refused.status == 403, host
                assert "is not this dashboard's address" in await refused.text()
                assert "Content-Security-Policy" in refused.headers

    serve(check)


def test_posts_need_the_csrf_token_of_this_start() -> None:
    async def check(client: aiohttp.ClientSession, url: str, app: web.Application) -> None:
        action = f"{url}schedules/acme/sync/actions/resume"
        async with client.post(action, data={"csrf_token": "guess"}) as refused:
            assert refused.status == 403
            assert "CSRF token" in await refused.text()
        async with client.get(f"{url}schedules/acme/sync") as page:
            cookie = page.headers["Set-Cookie"]
            assert "SameSite=Strict" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
        token = app[server.DASHBOARD].csrf
        async with client.post(action) as no_field:  # the cookie alone is not enough
            assert no_field.status == 403
        async with client.post(action, data={"csrf_token": token}) as sent:
            # Past the guard: the API server (absent here) is what answers now.
            assert sent.status == 502
            assert "Resume refused: cannot reach the API server" in await sent.text()
        async with client.put(action, data={"csrf_token": token}) as put:
            assert put.status == 405

    serve(check)


def test_pages_escape_what_the_cluster_says_and_say_why_actions_are_off() -> None:
    async def check(client: aiohttp.ClientSession, url: str, app: web.Application) -> None:
        async with client.get(url) as table:
            text = await table.text()
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert" not in text
            assert 'data-name="sync"' in text
        async with client.get(f"{url}schedules/acme/sync") as page:
            text = await page.text()
            assert "&lt;b&gt;bold&lt;/b&gt;" in text
            # The access review could not be asked: every button says so.
            assert 'id="action-run-now" disabled title="cannot reach the API server' in text
        async with client.get(f"{url}?phase=Running") as bad:
            assert bad.status == 400
            assert "phase &#39;Running&#39; is not allowed" in await bad.text()
        async with client.get(f"{url}schedules/acme/sync?page=0") as bad_page:
            assert bad_page.status == 400
        async with client.get(f"{url}schedules/acme/sync/confirm/delete") as bad_action:
            assert bad_action.status == 400
            assert "action &#39;delete&#39; is not allowed" in await bad_action.text()

    serve(check)


def test_a_live_block_answers_when_its_schedule_changes() -> None:
    async def check(client: aiohttp.ClientSession, url: str, app: web.Application) -> None:
        cache = app[server.DASHBOARD].cache
        loop = asyncio.get_running_loop()
        changed = {**SCHEDULE, "metadata": {**SCHEDULE["metadata"], "resourceVersion": "6"}}
        loop.call_later(0.1, cache.apply, "MODIFIED", changed)
        async with client.get(f"{url}schedules/acme/sync/live?rv=5") as live:
            assert 'data-resource-version="6"' in await live.text()
        watch = app[server.DASHBOARD].watch
        assert watch is not None
        watch.stop()  # its retries against the absent API server change nothing any more
        await asyncio.sleep(0.2)
        version = cache.version
        started = loop.time()
        async with client.get(f"{url}fleet?version={version}") as idle:
            assert idle.status == 200
        # Nothing changed: it waited for the whole long-poll, then answered anyway.
        assert loop.time() - started >= 0.45

    serve(check)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kubectl cronfleet", exit_on_error=False)
    server.add_arguments(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_the_command_takes_a_port_and_no_other_address(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("dashboard")
    assert (args.port, args.address, args.open) == (server.DEFAULT_PORT, "127.0.0.1", False)
    assert parse("dashboard", "--port", "0", "--open").port == 0
    for bad in ("70000", "-1", "http"):
        with pytest.raises(SystemExit):
            parse("dashboard", "--port", bad)
        assert "is not a port: a whole number from 1 to 65535, or 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse("dashboard", "--address", "0.0.0.0")
    assert "'0.0.0.0' is not allowed" in capsys.readouterr().err
