"""A real HTTP server on 127.0.0.1 for the ``http`` task's tests.

Routes (every method):
  /status/<code>            that status, body "status <code>"
  /json                     200, a small JSON object
  /echo                     200, JSON of the request: method, path, headers, body
  /slow/<seconds>           waits, then 200
  /dribble/<seconds>        headers at once, then one byte every 0.1 s for <seconds>
  /big/<bytes>              200 with that many bytes and a Content-Length
  /big-unsized/<bytes>      200 with that many bytes, no Content-Length
  /redirect/<n>             302 to /redirect/<n-1>; /redirect/0 answers 200 "arrived"
  /redirect-to?location=..&code=..   a redirect with that code to that location
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class LoopbackServer:
    def __init__(self) -> None:
        self.requests: list[SeenRequest] = []
        # Set at shutdown so that slow handlers end instead of holding threads.
        self.closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.handle(self)

            def do_POST(self) -> None:
                server.handle(self)

            def do_PUT(self) -> None:
                server.handle(self)

            def do_PATCH(self) -> None:
                server.handle(self)

            def do_DELETE(self) -> None:
                server.handle(self)

            def do_HEAD(self) -> None:
                server.handle(self)

            def do_OPTIONS(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        # A short poll interval makes shutdown() quick: it waits for the next poll.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        parts = urlsplit(request.path)
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.requests.append(SeenRequest(request.command, request.path, headers, body))
        segments = parts.path.strip("/").split("/")
        route, argument = segments[0], (segments[1] if len(segments) > 1 else "")
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        # The client may stop reading, as a capped or timed-out client does.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(request, route, argument, query, headers, body)

    def _route(
        self,
        request: BaseHTTPRequestHandler,
        route: str,
        argument: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        if route == "status":
            self.respond(request, int(argument), f"status {argument}".encode())
        elif route == "json":
            payload = json.dumps({"ok": True, "count": 3}).encode()
            self.respond(request, 200, payload, "application/json")
        elif route == "echo":
            echoed = {
                "method": request.command,
                "path": request.path,
                "headers": headers,
                "body": body.decode("utf-8", errors="replace"),
            }
            self.respond(request, 200, json.dumps(echoed).encode(), "application/json")
        elif route == "slow":
            self.closing.wait(float(argument))
            self.respond(request, 200, b"slow")
        elif route == "dribble":
            request.send_response(200)
            request.send_header("Content-Type", "text/plain")
            request.end_headers()
            end = time.monotonic() + float(argument)
            while time.monotonic() < end and not self.closing.is_set():
                request.wfile.write(b"x")
                request.wfile.flush()
                time.sleep(0.1)
        elif route in ("big", "big-unsized"):
            size = int(argument)
            request.send_response(200)
            request.send_header("Content-Type", "text/plain")
            if route == "big":
                request.send_header("Content-Length", str(size))
            request.end_headers()
            chunk = b"y" * 65536
            sent = 0
            while sent < size and not self.closing.is_set():
                piece = chunk[: size - sent]
                request.wfile.write(piece)
                sent += len(piece)
        elif route == "redirect":
            hops = int(argument)
            if hops == 0:
                self.respond(request, 200, b"arrived")
            else:
                self.redirect(request, 302, f"/redirect/{hops - 1}")
        elif route == "redirect-to":
            self.redirect(request, int(query.get("code", "302")), query["location"])
        else:
            self.respond(request, 404, b"no such route")

    @staticmethod
    def respond(
        request: BaseHTTPRequestHandler,
        status: int,
        payload: bytes,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(payload)

    @staticmethod
    def redirect(request: BaseHTTPRequestHandler, status: int, location: str) -> None:
        request.send_response(status)
        request.send_header("Location", location)
        request.send_header("Content-Length", "0")
        request.end_headers()
