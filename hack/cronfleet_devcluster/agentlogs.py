"""Container logs on the node agent, kept and served the way a kubelet does.

Each container instance (every restart is a new one) writes its stdout and
stderr through pipes into a file of its own, in the CRI log format the
kubelet reads (``<RFC3339Nano time> <stream> <F|P> <text>``), under
``<pod dir>/logs/<container>/<restart>.log``. A file that grows past
``MAX_LOG_BYTES`` is rotated once (``.1``), and only the running and the
previous instance of a container are kept, so a pod's logs are bounded on disk.

The agent serves them on the kubelet's log endpoint: HTTPS, a client
certificate signed by the cluster's CA required (as a kubelet with
``authentication.x509.clientCAFile`` does), ``GET /containerLogs/{namespace}/
{pod}/{container}`` with the query parameters the API server passes for
``kubectl logs`` (``follow``, ``previous``, ``timestamps``, ``tailLines``,
``limitBytes``, ``sinceSeconds``, ``sinceTime``). Which instance is read, and
the errors for a container with no logs yet, follow the kubelet's
``validateContainerLogStatus``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("cronfleet.node-agent.logs")

Object = dict[str, Any]

MAX_LOG_BYTES = 10 * 1024 * 1024
# The CRI runtimes split longer lines into partial records.
MAX_RECORD_BYTES = 16 * 1024
FOLLOW_POLL_SECONDS = 0.1


# -- the CRI log format ----------------------------------------------------------------


def timestamp(ns: int | None = None) -> str:
    """Go's RFC3339Nano in UTC, as container runtimes stamp log lines (trailing zeros trimmed)."""
    ns = time.time_ns() if ns is None else ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?")


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of an RFC3339 time (fractions of any length, Z or an offset)."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an RFC3339 time")
    main, digits, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    moment = datetime.fromisoformat(main + zone)
    return moment.timestamp() + (float(f"0.{digits}") if digits else 0.0)


@dataclass(frozen=True)
class Record:
    time: str
    stream: str
    partial: bool
    content: bytes

    def text(self) -> bytes:
        return self.content if self.partial else self.content + b"\n"


def parse_record(line: bytes) -> Record | None:
    """One line of a CRI log file, without its final newline; None if it is not one."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[2] not in (b"F", b"P"):
        return None
    content = parts[3] if len(parts) == 4 else b""
    return Record(parts[0].decode(), parts[1].decode(), parts[2] == b"P", content)


def format_record(stream: str, chunk: bytes, ns: int | None = None) -> bytes:
    """A chunk read from a pipe: a full line ends with a newline, anything else is partial."""
    if chunk.endswith(b"\n"):
        return f"{timestamp(ns)} {stream} F ".encode() + chunk
    return f"{timestamp(ns)} {stream} P ".encode() + chunk + b"\n"


# -- writing ----------------------------------------------------------------------------


class InstanceLog:
    """The log file of one container instance, fed by the pipes of its process."""

    def __init__(self, path: Path, max_bytes: int = MAX_LOG_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = path.open("ab")
        self._lock = threading.Lock()
        self._pumps: list[threading.Thread] = []
        self.done = threading.Event()

    @property
    def rotated(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def attach(self, stream: str, pipe: IO[bytes]) -> None:
        thread = threading.Thread(
            target=self._pump, args=(stream, pipe), name=f"log-{self.path}-{stream}", daemon=True
        )
        self._pumps.append(thread)
        thread.start()

    def start_closing_when_pumps_end(self) -> None:
        pumps = list(self._pumps)

        def close() -> None:
            for pump in pumps:
                pump.join()
            with self._lock:
                self._file.close()
            self.done.set()

        threading.Thread(target=close, name=f"log-close-{self.path}", daemon=True).start()

    def _pump(self, stream: str, pipe: IO[bytes]) -> None:
        with pipe:
            while True:
                chunk = pipe.readline(MAX_RECORD_BYTES)
                if not chunk:
                    return
                self._write(format_record(stream, chunk))

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._file.tell() + len(data) > self.max_bytes:
                self._file.close()
                os.replace(self.path, self.rotated)
                self._file = self.path.open("ab")
            self._file.write(data)
            self._file.flush()

    def text(self) -> str:
        """What the container printed (stdout and stderr, interleaved as written)."""
        return b"".join(r.text() for r in read_records(self)).decode(errors="replace")


def read_records(instance: InstanceLog) -> list[Record]:
    records: list[Record] = []
    for path in (instance.rotated, instance.path):
        with contextlib.suppress(FileNotFoundError):
            for line in path.read_bytes().splitlines():
                record = parse_record(line)
                if record is not None:
                    records.append(record)
    return records


def keep_last_instances(container_dir: Path, keep: set[int]) -> None:
    """The kubelet keeps the logs of the running and the last terminated instance only."""
    if not container_dir.is_dir():
        return
    for entry in container_dir.iterdir():
        restart = entry.name.split(".", 1)[0]
        if restart.isdigit() and int(restart) not in keep:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


# -- what to serve ---------------------------------------------------------------------


class LogRequestError(Exception):
    """A log request the kubelet would refuse; ``status`` is the HTTP status it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _flag(query: dict[str, list[str]], name: str) -> bool:
    value = query.get(name, ["false"])[-1].lower()
    if value not in ("true", "false", "1", "0", ""):
        raise LogRequestError(422, f"{name}={value!r} is not a boolean; use true or false")
    return value in ("true", "1")


def _number(query: dict[str, list[str]], name: str, minimum: int) -> int | None:
    if name not in query:
        return None
    text = query[name][-1]
    try:
        value = int(text)
    except ValueError:
        raise LogRequestError(422, f"{name}={text!r} is not an integer") from None
    if value < minimum:
        raise LogRequestError(422, f"{name}={value} is invalid: it must be at least {minimum}")
    return value


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_seconds: int | None = None
    since_time: float | None = None

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> LogOptions:
        """The query the API server sends, checked as the kubelet's ValidatePodLogOptions does."""
        # The kubelet still accepts the old `tail` parameter; `tail=all` means no limit.
        if "tail" in query:
            tail = query["tail"][-1]
            if tail != "all":
                query = {**query, "tailLines": [tail]}
        since_seconds = _number(query, "sinceSeconds", 1)
        since_time: float | None = None
        if "sinceTime" in query:
            text = query["sinceTime"][-1]
            try:
                since_time = parse_timestamp(text)
            except ValueError:
                raise LogRequestError(
                    422, f"sinceTime={text!r} is not an RFC3339 time such as 2026-01-02T15:04:05Z"
                ) from None
        if since_seconds is not None and since_time is not None:
            raise LogRequestError(422, "sinceSeconds and sinceTime: at most one may be given")
        return cls(
            follow=_flag(query, "follow"),
            previous=_flag(query, "previous"),
            timestamps=_flag(query, "timestamps"),
            tail_lines=_number(query, "tailLines", 0),
            limit_bytes=_number(query, "limitBytes", 1),
            since_seconds=since_seconds,
            since_time=since_time,
        )

    def since(self, now: float) -> float | None:
        if self.since_seconds is not None:
            return now - self.since_seconds
        return self.since_time


def instance_for(status: Object | None, container: str, pod: str, previous: bool) -> str:
    """The container ID whose log to read, or the kubelet's error for why there is none."""
    if status is None:
        raise LogRequestError(400, f'container "{container}" in pod "{pod}" is not available')
    last = (status.get("lastState") or {}).get("terminated")
    state = status.get("state") or {}
    if previous:
        if not last or not last.get("containerID"):
            raise LogRequestError(
                400, f'previous terminated container "{container}" in pod "{pod}" not found'
            )
        return str(last["containerID"])
    if "running" in state:
        return str(status.get("containerID", ""))
    if "terminated" in state:
        current = state["terminated"].get("containerID")
        if current:
            return str(current)
        if last and last.get("containerID"):
            return str(last["containerID"])
        raise LogRequestError(400, f'container "{container}" in pod "{pod}" is terminated')
    if last:
        if not last.get("containerID"):
            raise LogRequestError(400, f'container "{container}" in pod "{pod}" is terminated')
        return str(last["containerID"])
    reason = (state.get("waiting") or {}).get("reason", "")
    if reason == "ErrImagePull":
        detail = "image can't be pulled"
    elif reason == "ImagePullBackOff":
        detail = "trying and failing to pull image"
    elif reason:
        detail = reason
    else:
        raise LogRequestError(
            400, f'container "{container}" in pod "{pod}" is waiting to start - no logs yet'
        )
    raise LogRequestError(
        400, f'container "{container}" in pod "{pod}" is waiting to start: {detail}'
    )


def render(record: Record, options: LogOptions) -> bytes:
    text = record.text()
    return f"{record.time} ".encode() + text if options.timestamps else text


class Output:
    """Writes what was asked for, and stops at ``limitBytes``."""

    def __init__(self, write: Callable[[bytes], None], limit: int | None) -> None:
        self._write = write
        self.remaining = limit

    @property
    def full(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def send(self, data: bytes) -> None:
        if self.remaining is not None:
            data = data[: self.remaining]
            self.remaining -= len(data)
        if data:
            self._write(data)


def stream_log(
    instance: InstanceLog,
    options: LogOptions,
    write: Callable[[bytes], None],
    stopped: Callable[[], bool] = lambda: False,
) -> None:
    """Write an instance's log as the kubelet does: tail, then since, then the byte limit;
    with ``follow``, keep writing until the instance's process and pipes have ended."""
    output = Output(write, options.limit_bytes)
    since = options.since(time.time())
    records = read_records(instance)
    # Where the current file was read up to, so following continues from there.
    try:
        offset = instance.path.stat().st_size
    except FileNotFoundError:
        offset = 0
    if options.tail_lines is not None:
        records = records[len(records) - options.tail_lines :] if options.tail_lines else []

    def emit(items: Iterator[Record] | list[Record]) -> None:
        for record in items:
            if output.full:
                return
            if since is not None and parse_timestamp(record.time) < since:
                continue
            output.send(render(record, options))

    emit(records)
    if not options.follow:
        return
    pending = b""
    while not output.full and not stopped():
        finished = instance.done.is_set()
        try:
            size = instance.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < offset:  # rotated while following: the new file starts over
            offset, pending = 0, b""
        if size > offset:
            with instance.path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read(size - offset)
            offset += len(data)
            pending += data
            *lines, pending = pending.split(b"\n")
            emit(r for r in map(parse_record, lines) if r is not None)
            continue
        if finished:
            return
        time.sleep(FOLLOW_POLL_SECONDS)


# -- serving ------------------------------------------------------------------------------


class LogSource(Protocol):
    """What the server needs of a pod: its containers, their status, their instances' logs."""

    def container_names(self) -> list[str]: ...

    def container_status(self, name: str) -> Object | None: ...

    def instance_log(self, container_id: str) -> InstanceLog | None: ...


@dataclass(frozen=True)
class LogServerTls:
    cert_file: Path
    key_file: Path
    client_ca_file: Path

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        context.load_verify_locations(cafile=str(self.client_ca_file))
        # No client certificate, no request: the API server presents the one
        # the control plane issued it (--kubelet-client-certificate).
        context.verify_mode = ssl.CERT_REQUIRED
        return context


class _Handler(BaseHTTPRequestHandler):
    server: LogServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _plain(self, status: int, message: str) -> None:
        body = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        if len(parts) != 4 or parts[0] != "containerLogs" or not all(parts[1:]):
            self._plain(404, f"404 page not found: {url.path}")
            return
        _, namespace, pod, container = parts
        try:
            options = LogOptions.from_query(parse_qs(url.query, keep_blank_values=True))
            source = self.server.lookup(namespace, pod)
            if source is None:
                raise LogRequestError(404, f'pod "{pod}" does not exist')
            if container not in source.container_names():
                raise LogRequestError(404, f'container "{container}" not found in pod "{pod}"')
            container_id = instance_for(
                source.container_status(container), container, pod, options.previous
            )
            instance = source.instance_log(container_id)
            if instance is None:
                raise LogRequestError(
                    400, f'container "{container}" in pod "{pod}": no log kept for {container_id}'
                )
        except LogRequestError as error:
            self._plain(error.status, str(error))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            stream_log(instance, options, chunk, stopped=self.server.stopping.is_set)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        self.close_connection = True


class LogServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        tls: LogServerTls,
        lookup: Callable[[str, str], LogSource | None],
    ) -> None:
        super().__init__(address, _Handler)
        self.lookup = lookup
        self.stopping = threading.Event()
        # The handshake happens in the request's own thread, so a client that
        # stalls it does not hold up everyone else's requests.
        self.socket = tls.context().wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        connection.settimeout(30)
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client without an acceptable certificate ends here: one line, no traceback.
        log.info("log request from %s refused or broken", client_address)

    def serve_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="kubelet-logs", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
