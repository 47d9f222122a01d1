"""The endpoints the examples' ``http`` Schedules call, served on 127.0.0.1 for ``make demo``.

The examples name in-cluster Services (``http://feeds.default.svc/fetch``), as
they would on a real cluster. Here pods are local processes, which would look
such names up through this machine's resolver and call out. So the demo runs
this server beside the control plane and applies its copies of the examples
with each URL's host rewritten to it; the paths stay as written.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit, urlunsplit

Object = dict[str, Any]

HOST = "127.0.0.1"


def local_url(url: str, port: int) -> str:
    """``url`` with its host (and port) replaced by this server's."""
    parts = urlsplit(url)
    return urlunsplit(("http", f"{HOST}:{port}", parts.path or "/", parts.query, ""))


def localise(documents: Iterable[Object | None], port: int) -> tuple[list[Object], list[str]]:
    """Copies of the documents whose ``http`` Schedules call this server, and the paths called."""
    localised: list[Object] = []
    paths: list[str] = []
    for document in documents:
        if not document:
            continue
        spec = document.get("spec") or {}
        params = spec.get("params") or {}
        if document.get("kind") == "Schedule" and spec.get("task") == "http" and "url" in params:
            url = local_url(str(params["url"]), port)
            paths.append(urlsplit(url).path)
            localised.append({**document, "spec": {**spec, "params": {**params, "url": url}}})
        else:
            localised.append(document)
    return localised, sorted(set(paths))


def handler_for(paths: Iterable[str]) -> type[BaseHTTPRequestHandler]:
    known = frozenset(paths)

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            path = urlsplit(self.path).path
            status = 200 if path in known else 404
            body = json.dumps({"ok": status == 200, "method": self.command, "path": path}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            # One line per call in the demo's log, so a run can be seen arriving.
            print(f"{self.address_string()} {format % args}", flush=True)

    return Handler


def serve(port: int, paths: Iterable[str]) -> ThreadingHTTPServer:
    """Start answering on 127.0.0.1:``port`` (0: any free port) in a background thread."""
    server = ThreadingHTTPServer((HOST, port), handler_for(paths))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="endpoints", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cronfleet_devcluster.endpoints")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("paths", nargs="*", help="paths answered with 200; others get 404")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((HOST, args.port), handler_for(args.paths))
    server.daemon_threads = True
    print(f"serving {', '.join(args.paths) or 'no paths'} on http://{HOST}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
