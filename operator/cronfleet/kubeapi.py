"""The operator's calls to the Kubernetes API, as plain JSON over aiohttp.

This client acts (server-side apply of CronJobs, status patches, events) and
carries the informers' listings and watches (``cronfleet.informers``). It
authenticates with the credentials kopf logged in with, and logs in again once
when the API server answers 401 (rotated tokens).
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import kopf
import orjson

FIELD_MANAGER = "cronfleet"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"

Login = Callable[[], Awaitable[kopf.ConnectionInfo]]


class ApiError(Exception):
    def __init__(self, status: int, body: Any, method: str, path: str) -> None:
        self.status = status
        self.body = body
        self.reason = body.get("reason", "") if isinstance(body, dict) else ""
        self.message = str(body.get("message", "")) if isinstance(body, dict) else str(body)
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")


class NotLeaderError(Exception):
    """A write refused before it was sent: this replica is not the elected leader."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: not sent, this replica is not the leader")


class UndecodableResponseError(Exception):
    """An answer nested deeper than this process may decode."""


def loads(data: bytes | str) -> Any:
    """Decode JSON with orjson (about twice as fast), or with the json module what
    orjson refuses: it stops at 1,024 levels of nesting, the API server stores
    objects nested up to 10,000 deep (``cronfleet.main`` lets json decode them)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _decode(text: bytes | str, method: str, path: str) -> Any:
    try:
        return loads(text) if text else {}
    except json.JSONDecodeError:
        return text
    except RecursionError:
        # cronfleet.main raises the limit above anything the API server stores;
        # should a deeper answer come anyway, the failed request says why.
        raise UndecodableResponseError(
            f"{method} {path}: the answer is nested too deeply to decode "
            f"with a recursion limit of {sys.getrecursionlimit()}"
        ) from None


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext:
    if info.ca_data:
        data = info.ca_data
        text = data.decode() if isinstance(data, bytes) else data
        if "BEGIN CERTIFICATE" not in text:
            text = base64.b64decode(text).decode()
        context = ssl.create_default_context(cadata=text)
    else:
        context = ssl.create_default_context(cafile=info.ca_path or None)
    if info.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data and info.private_key_data:
        cert = _to_file(info.certificate_data, ".crt")
        key = _to_file(info.private_key_data, ".key")
    if cert and key:
        context.load_cert_chain(cert, key)
    return context


def _to_file(data: str | bytes, suffix: str) -> str:
    raw = data if isinstance(data, bytes) else data.encode()
    if b"-----BEGIN" not in raw:
        raw = base64.b64decode(raw)
    with tempfile.NamedTemporaryFile(prefix="cronfleet-", suffix=suffix, delete=False) as handle:
        handle.write(raw)
    return handle.name


class KubeApi:
    def __init__(self, login: Login) -> None:
        self._login = login
        self._info: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None
        # Watches hold their connection for minutes: they get their own pool,
        # so however many there are, requests never wait for a connection.
        self._watch_session: aiohttp.ClientSession | None = None
        # Called for every request sent (the cronfleet_api_requests_total metric).
        self.on_request: Callable[[], None] | None = None
        # Whether a request may be sent now (leader election: a standby writes
        # nothing); a refused one raises NotLeaderError without being sent.
        self.may_send: Callable[[str, str], bool] | None = None

    async def _connect(self, fresh: bool = False) -> tuple[aiohttp.ClientSession, str]:
        if self._session is None or fresh:
            await self.close()
            self._info = await self._login()
            context = _ssl_context(self._info)
            headers = {"Accept": "application/json", **self._info.as_http_headers()}
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context, limit=32),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=30),
            )
            self._watch_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context, limit=0),
                headers=headers,
                # A watch lasts as long as the API server's timeoutSeconds; a
                # silent connection (bookmarks come every minute) is dead.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=150),
            )
        assert self._info is not None
        return self._session, self._info.server.rstrip("/")

    async def close(self) -> None:
        for session in (self._session, self._watch_session):
            if session is not None:
                await session.close()
        self._session = self._watch_session = None

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        if self.may_send is not None and not self.may_send(method, path):
            raise NotLeaderError(method, path)
        for attempt in range(2):
            session, server = await self._connect(fresh=attempt > 0)
            url = server + path + ("?" + urlencode(query) if query else "")
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": content_type} if body is not None else {}
            if self.on_request is not None:
                self.on_request()
            async with session.request(method, url, data=data, headers=headers) as response:
                text = await response.text()
                if response.status == 401 and attempt == 0:
                    continue  # credentials rotated: log in again once
                parsed = _decode(text, method, path)
                if response.status >= 400:
                    raise ApiError(response.status, parsed, method, path)
                return parsed
        raise AssertionError("unreachable")

    async def read_list(self, path: str, query: Mapping[str, str]) -> dict[str, Any]:
        """One page of a listing (an informer's; not counted among the operator's requests)."""
        for attempt in range(2):
            session, server = await self._connect(fresh=attempt > 0)
            async with session.get(f"{server}{path}?{urlencode(query)}") as response:
                text = await response.read()
                if response.status == 401 and attempt == 0:
                    continue  # credentials rotated: log in again once
                parsed = _decode(text, "GET", path)
                if response.status >= 400 or not isinstance(parsed, dict):
                    raise ApiError(response.status, parsed, "GET", path)
                return parsed
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def watch(
        self, path: str, query: Mapping[str, str]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A watch request's open response, its events one JSON document per line."""
        for attempt in range(2):
            await self._connect(fresh=attempt > 0)
            assert self._watch_session is not None and self._info is not None
            url = f"{self._info.server.rstrip('/')}{path}?{urlencode(query)}"
            async with self._watch_session.get(url) as response:
                if response.status == 401 and attempt == 0:
                    continue  # credentials rotated: log in again once
                if response.status >= 400:
                    text = await response.text()
                    raise ApiError(response.status, _decode(text, "GET", path), "WATCH", path)
                yield response
                return
        raise AssertionError("unreachable")

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return result

    async def apply(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply as the `cronfleet` field manager, taking over conflicts."""
        result: dict[str, Any] = await self.request(
            "PATCH",
            path,
            dict(body),
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            content_type=APPLY_PATCH,
        )
        return result

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PATCH",
            path,
            dict(body),
            query={"fieldManager": FIELD_MANAGER},
            content_type=MERGE_PATCH,
        )
        return result

    async def delete(self, path: str) -> dict[str, Any]:
        """Delete with background propagation: the Job's pods go with it."""
        result: dict[str, Any] = await self.request(
            "DELETE", path, {"propagationPolicy": "Background"}
        )
        return result

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "POST", path, dict(body), query={"fieldManager": FIELD_MANAGER}
        )
        return result

    async def create_token_review(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Who a bearer token belongs to (guards /metrics; nothing is stored)."""
        result: dict[str, Any] = await self.request(
            "POST", "/apis/authentication.k8s.io/v1/tokenreviews", dict(body)
        )
        return result

    async def create_subject_access_review(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Whether a user may do something (guards /metrics; nothing is stored)."""
        result: dict[str, Any] = await self.request(
            "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", dict(body)
        )
        return result

    # -- leases (leader election) ------------------------------------------------------

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.get_or_none(lease_path(namespace, name))

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.create(leases_path(namespace), body)

    async def replace_lease(
        self, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replace the Lease, conditionally on the resourceVersion the body carries."""
        result: dict[str, Any] = await self.request(
            "PUT", lease_path(namespace, name), dict(body), query={"fieldManager": FIELD_MANAGER}
        )
        return result


def leases_path(namespace: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def lease_path(namespace: str, name: str) -> str:
    return f"{leases_path(namespace)}/{name}"


def schedule_path(namespace: str, name: str, sub: str = "") -> str:
    base = f"/apis/cronfleet.io/v1alpha1/namespaces/{namespace}/schedules/{name}"
    return f"{base}/{sub}" if sub else base


def cronjob_path(namespace: str, name: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/cronjobs/{name}"


def jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


def job_path(namespace: str, name: str) -> str:
    return f"{jobs_path(namespace)}/{name}"


def service_account_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}"


def events_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/events"
