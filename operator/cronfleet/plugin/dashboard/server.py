"""`kubectl cronfleet dashboard`: the aiohttp application, its guards, and the command.

Every page reads Schedules from one watch kept with the user's credentials;
every action is a POST that the user's own RBAC decides. The server listens
on 127.0.0.1 only, answers only its own Host, and accepts a POST only with
the token of this start (CSRF).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
import sys
import webbrowser
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from cronfleet.plugin import actions
from cronfleet.plugin.api import get_schedule
from cronfleet.plugin.dashboard import detail, fleet
from cronfleet.plugin.dashboard.events import schedule_events
from cronfleet.plugin.dashboard.fleetwatch import FleetCache, ScheduleWatch
from cronfleet.plugin.dashboard.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    LOOPBACK,
    SECURITY_HEADERS,
    csrf_cookie_name,
    csrf_valid,
    host_allowed,
    new_csrf_token,
    own_hosts,
)
from cronfleet.plugin.kubeconfig import PluginError, Session, load_session

DEFAULT_PORT = 8765
# How long a live block waits for a change before it answers anyway (and asks again).
LONG_POLL_SECONDS = 25.0
FIRST_LIST_SECONDS = 3.0
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Dashboard:
    """What every request reads: the user's session, the watched Schedules, this start's token."""

    session: Session
    # None: every namespace (-A); otherwise the one namespace watched.
    namespace: str | None
    cache: FleetCache
    csrf: str
    clock: Callable[[], datetime]
    templates: jinja2.Environment
    watch: ScheduleWatch | None = None
    long_poll_seconds: float = LONG_POLL_SECONDS

    @property
    def scope(self) -> str:
        return "all namespaces" if self.namespace is None else f"namespace {self.namespace}"

    async def blocking(self, call: Callable[..., T], *args: Any) -> T:
        """Run a call of the (blocking) official client off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(call, *args))


DASHBOARD = web.AppKey("dashboard", Dashboard)


def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("cronfleet.plugin.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def own_port(request: web.Request) -> int:
    """The port this connection reached: the one the Host header must name."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return int(sockname[1])
    return -1


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host check, CSRF check on every POST, and the security headers on every answer."""
    port = own_port(request)
    try:
        if not host_allowed(request.headers.get("Host"), port):
            allowed = " or ".join(sorted(own_hosts(port)))
            raise web.HTTPForbidden(
                text=f"Host {request.headers.get('Host')!r} is not this dashboard's address: "
                f"open it as http://{LOOPBACK}:{port}/ (the Host must be {allowed})"
            )
        if request.method not in ("GET", "HEAD"):
            if request.method != "POST":
                raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD", "POST"])
            dashboard = request.app[DASHBOARD]
            form = await request.post()
            submitted = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
            cookie = request.cookies.get(csrf_cookie_name(port))
            if not csrf_valid(
                dashboard.csrf, cookie, submitted if isinstance(submitted, str) else None
            ):
                raise web.HTTPForbidden(
                    text="refused: this request does not carry the dashboard's CSRF token "
                    "(open the page from the dashboard and submit its form again)"
                )
        response = await handler(request)
    except web.HTTPException as error:
        error.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    return response


def render(
    request: web.Request,
    template: str,
    status: int = 200,
    page: bool = False,
    **values: Any,
) -> web.Response:
    dashboard = request.app[DASHBOARD]
    text = dashboard.templates.get_template(template).render(
        csrf=dashboard.csrf,
        context=dashboard.session.context,
        scope=dashboard.scope,
        **values,
    )
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    if page:
        # HttpOnly: the pages carry the token in their forms; script never needs the cookie.
        response.set_cookie(
            csrf_cookie_name(own_port(request)),
            dashboard.csrf,
            path="/",
            httponly=True,
            samesite="Strict",
        )
    return response


def bad_request(request: web.Request, message: str, status: int = 400) -> web.Response:
    page = "HX-Request" not in request.headers
    template = "result.html" if page else "_result.html"
    return render(
        request,
        template,
        status,
        page,
        title="Not possible",
        message=message,
        failed=True,
        back="/",
    )


# -- the Schedules table ---------------------------------------------------------------


def _fleet_values(
    dashboard: Dashboard, wanted: fleet.FleetFilter, shown_namespaces: str | None = None
) -> dict[str, Any]:
    view = fleet.fleet_view(dashboard.cache.schedules(), wanted, dashboard.clock())
    namespaces = fleet.namespaces_key(view.namespaces)
    poll = {**wanted.query(), "version": str(dashboard.cache.version), "ns": namespaces}
    return {
        "view": view,
        # The namespace list is replaced only when it changed, not under the user's pointer.
        "out_of_band": shown_namespaces is not None and shown_namespaces != namespaces,
        "version": dashboard.cache.version,
        "poll_query": urlencode(poll),
        "synced": dashboard.cache.synced,
        "watch_error": dashboard.cache.error,
    }


async def fleet_page(request: web.Request) -> web.StreamResponse:
    dashboard = request.app[DASHBOARD]
    try:
        wanted = fleet.parse_filter(request.query)
    except ValueError as error:
        return bad_request(request, str(error))
    if not dashboard.cache.synced:
        # The first paint shows the Schedules rather than "Loading…" when the list is quick.
        await dashboard.cache.changed_since(dashboard.cache.version, FIRST_LIST_SECONDS)
    return render(request, "fleet.html", page=True, **_fleet_values(dashboard, wanted))


async def fleet_fragment(request: web.Request) -> web.StreamResponse:
    """The table and cards; with ``version``, answered once the Schedules changed."""
    dashboard = request.app[DASHBOARD]
    try:
        wanted = fleet.parse_filter(request.query)
        version = int(request.query.get("version", "-1"))
    except ValueError as error:
        return bad_request(request, str(error))
    if version >= 0:
        await dashboard.cache.changed_since(version, dashboard.long_poll_seconds)
    values = _fleet_values(dashboard, wanted, request.query.get("ns", ""))
    response = render(request, "_fleet.html", **values)
    if version < 0:
        # A new filter: the address bar follows, so the filtered table can be bookmarked.
        query = urlencode(wanted.query())
        response.headers["HX-Replace-Url"] = f"/?{query}" if query else "/"
    return response


# -- the Schedule page -------------------------------------------------------------------


async def _schedule(dashboard: Dashboard, namespace: str, name: str) -> dict[str, Any]:
    cached = dashboard.cache.get(namespace, name)
    if cached is not None:
        return cached
    # Outside the watched namespace (or not seen yet): read it directly.
    return await dashboard.blocking(get_schedule, dashboard.session, namespace, name)


async def _schedule_values(request: web.Request) -> dict[str, Any]:
    dashboard = request.app[DASHBOARD]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    page = detail.parse_page(request.query.get("page"))
    failed_only = request.query.get("failed", "") in ("1", "true")
    schedule = await _schedule(dashboard, namespace, name)
    events_error = ""
    try:
        events = await dashboard.blocking(schedule_events, dashboard.session, namespace, name)
    except PluginError as error:
        events, events_error = [], f"events not shown: {error}"
    permission = await dashboard.blocking(actions.allowed, dashboard.session, namespace, "patch")
    view = detail.schedule_view(
        schedule, events, events_error, permission, dashboard.clock(), page, failed_only
    )
    poll: dict[str, str] = {"rv": view.resource_version}
    if view.history.page > 1:
        poll["page"] = str(view.history.page)
    if failed_only:
        poll["failed"] = "1"
    return {"view": view, "poll_query": urlencode(poll)}


async def schedule_page(request: web.Request) -> web.StreamResponse:
    try:
        values = await _schedule_values(request)
    except ValueError as error:
        return bad_request(request, str(error))
    except PluginError as error:
        return bad_request(request, str(error), 404 if "not found" in str(error) else 502)
    return render(request, "schedule.html", page=True, **values)


async def _wait_for_change(dashboard: Dashboard, namespace: str, name: str, seen: str) -> None:
    """Until the Schedule's resourceVersion is no longer ``seen``, or the long-poll ran out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + dashboard.long_poll_seconds
    while True:
        current = dashboard.cache.get(namespace, name)
        if current is not None and current["metadata"].get("resourceVersion") != seen:
            return
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        if not await dashboard.cache.changed_since(dashboard.cache.version, remaining):
            return


async def schedule_fragment(request: web.Request) -> web.StreamResponse:
    """The live part of the Schedule page; with ``rv``, answered once the Schedule changed."""
    dashboard = request.app[DASHBOARD]
    seen = request.query.get("rv")
    if seen:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        await _wait_for_change(dashboard, namespace, name, seen)
    try:
        values = await _schedule_values(request)
    except ValueError as error:
        return bad_request(request, str(error))
    except PluginError as error:
        return bad_request(request, str(error), 404 if "not found" in str(error) else 502)
    return render(request, "_schedule_live.html", **values)


async def confirm(request: web.Request) -> web.StreamResponse:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    try:
        action = detail.parse_action(request.match_info["action"])
    except ValueError as error:
        return bad_request(request, str(error))
    return render(
        request,
        "_confirm.html",
        href=f"/schedules/{namespace}/{name}",
        action=action,
        label=detail.LABELS[action],
        question=detail.question(action, namespace, name),
    )


async def act(request: web.Request) -> web.StreamResponse:
    """Send the action's annotation patch as the user; the API server's answer, in words."""
    dashboard = request.app[DASHBOARD]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    page = "HX-Request" not in request.headers
    try:
        action = detail.parse_action(request.match_info["action"])
    except ValueError as error:
        return bad_request(request, str(error))
    form = await request.post()
    reason = form.get("reason")
    wanted = detail.action_request(
        action, dashboard.clock(), reason.strip() if isinstance(reason, str) else ""
    )
    status, failed = 200, False
    try:
        await dashboard.blocking(
            actions.apply_action, dashboard.session, namespace, name, wanted.patch
        )
        message = detail.done_message(wanted, namespace, name)
    except PluginError as error:
        text = str(error)
        failed = True
        status = 403 if text.startswith("forbidden") else 404 if "not found" in text else 502
        message = f"{detail.LABELS[action]} refused: {text}"
    return render(
        request,
        "result.html" if page else "_result.html",
        status,
        page,
        title=detail.LABELS[action],
        message=message,
        failed=failed,
        back=f"/schedules/{namespace}/{name}",
    )


async def dialog_closed(request: web.Request) -> web.StreamResponse:
    return web.Response(text="", content_type="text/html")


# -- the application ---------------------------------------------------------------------


def build_app(
    session: Session,
    namespace: str | None,
    clock: Callable[[], datetime] = utcnow,
    long_poll_seconds: float = LONG_POLL_SECONDS,
) -> web.Application:
    """The dashboard for ``session``, watching ``namespace`` (None: every namespace)."""
    app = web.Application(middlewares=[guard])
    dashboard = Dashboard(
        session=session,
        namespace=namespace,
        cache=FleetCache(),
        csrf=new_csrf_token(),
        clock=clock,
        templates=templates(),
        long_poll_seconds=long_poll_seconds,
    )
    app[DASHBOARD] = dashboard

    async def start_watch(app: web.Application) -> None:
        dashboard.watch = ScheduleWatch(
            session, namespace, dashboard.cache, asyncio.get_running_loop()
        )
        dashboard.watch.start()

    async def stop_watch(app: web.Application) -> None:
        if dashboard.watch is not None:
            dashboard.watch.stop()

    app.on_startup.append(start_watch)
    app.on_cleanup.append(stop_watch)
    routes = [
        web.get("/", fleet_page),
        web.get("/fleet", fleet_fragment),
        web.get("/dialog/closed", dialog_closed),
        web.get("/schedules/{namespace}/{name}", schedule_page),
        web.get("/schedules/{namespace}/{name}/live", schedule_fragment),
        web.get("/schedules/{namespace}/{name}/confirm/{action}", confirm),
        web.post("/schedules/{namespace}/{name}/actions/{action}", act),
    ]
    app.add_routes(routes)
    app.router.add_static("/static", STATIC, follow_symlinks=False)
    return app


async def start(app: web.Application, port: int) -> tuple[web.AppRunner, str]:
    """Listen on 127.0.0.1:``port`` (0: any free port); the runner and the dashboard's URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise PluginError(
            f"--port {port}: cannot listen on {LOOPBACK}:{port} ({error.strerror}); "
            "pass another port, or --port 0 for any free one"
        ) from error
    bound = next(address for address in runner.addresses if isinstance(address, tuple))
    return runner, f"http://{LOOPBACK}:{bound[1]}/"


async def serve(session: Session, namespace: str | None, port: int, open_browser: bool) -> None:
    app = build_app(session, namespace)
    runner, url = await start(app, port)
    where = f"context {session.context}" if session.context else "in-cluster credentials"
    scope = "all namespaces" if namespace is None else f"namespace {namespace}"
    print(f"cronfleet dashboard: {url} ({where}, {scope}; Ctrl-C stops it)", flush=True)
    if open_browser:
        webbrowser.open(url)
    stopping = asyncio.Event()
    # `kill` (SIGTERM) stops it as cleanly as Ctrl-C does.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()
    print("cronfleet dashboard: stopped", file=sys.stderr)


# -- the command -------------------------------------------------------------------------


def port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port: a whole number from 1 to 65535, or 0 for any free port"
        )
    return int(text)


def loopback_only(text: str) -> str:
    if text != LOOPBACK:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed: the dashboard acts with your credentials, so it "
            f"listens on {LOOPBACK} only (reach it from elsewhere through an SSH tunnel)"
        )
    return text


def add_arguments(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parents = getattr(subparsers, "cronfleet_parents", [])
    parser = subparsers.add_parser(
        "dashboard",
        parents=parents,
        help="serve a web UI on 127.0.0.1 that acts with your credentials",
        description="Serve the cronfleet dashboard on 127.0.0.1 until interrupted (Ctrl-C).",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--address",
        type=loopback_only,
        default=LOOPBACK,
        help=f"the address to listen on: {LOOPBACK}, the only one allowed",
    )
    parser.add_argument("--open", action="store_true", help="open the URL in the web browser")
    parser.set_defaults(run=run)


def _option(args: argparse.Namespace, *names: str) -> Any:
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            return value
    return None


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 after Ctrl-C, PluginError for what cannot start."""
    session = load_session(
        _option(args, "kubeconfig"), _option(args, "context"), _option(args, "namespace")
    )
    everywhere = bool(_option(args, "all_namespaces"))
    try:
        asyncio.run(serve(session, None if everywhere else session.namespace, args.port, args.open))
    except KeyboardInterrupt:
        print("cronfleet dashboard: stopped", file=sys.stderr)
    return 0


__all__ = [
    "DEFAULT_PORT",
    "Dashboard",
    "add_arguments",
    "build_app",
    "run",
    "serve",
    "start",
]
