"""List and watch what the operator caches, and hand every event to the controller.

One stream per kind of object (and per watched namespace), as client-go's
reflector does it: a paged LIST, then a WATCH from the listing's
resourceVersion with bookmarks, resumed from the last version seen after a
disconnect, and listed afresh when that version is too old (410 Gone). A fresh
listing reports every cached object it no longer holds as deleted, so nothing
deleted during a gap stays cached.

Each event goes straight to the controller's ``observe_*`` method, which only
updates caches and queues keys. kopf's own watching runs a task per object and
deep-copies every body for its diff bookkeeping, which cronfleet's event
handlers never read: at 1,000 Schedules created at once that was a quarter of
the operator's CPU, and on a restart it came on top of every listed object.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from cronfleet.kubeapi import ApiError, KubeApi, loads

log = logging.getLogger("cronfleet.informers")

PAGE_SIZE = 500
# The API server ends a watch after this long; it is then resumed at once.
WATCH_SECONDS = 300
RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
CHUNK_BYTES = 1 << 20
# A watch that ends sooner than this, without an error, counts as a failure.
SHORT_WATCH_SECONDS = 1.0

Body = Mapping[str, Any]
Observe = Callable[[str | None, Body], None]
ObjectKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Watched:
    """One kind of object the operator caches, and where its events go."""

    prefix: str  # "/api/v1", "/apis/batch/v1"
    plural: str
    observe: Observe
    # The bodies cached now: what a fresh listing is compared with.
    cached: Callable[[], Iterable[Body]]
    label_selector: str = ""

    def path(self, namespace: str | None) -> str:
        if namespace is None:
            return f"{self.prefix}/{self.plural}"
        return f"{self.prefix}/namespaces/{namespace}/{self.plural}"

    def where(self, namespace: str | None) -> str:
        return f"{self.plural} in {namespace}" if namespace else f"{self.plural} (all namespaces)"


class GoneError(Exception):
    """The resourceVersion to resume from is too old: list again."""


def key_of(body: Body) -> ObjectKey:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def vanished(listed: set[ObjectKey], cached: Iterable[Body], namespace: str | None) -> list[Body]:
    """The cached bodies a fresh listing of ``namespace`` (None: all) no longer holds."""
    gone = []
    for body in cached:
        key = key_of(body)
        if (namespace is None or key[0] == namespace) and key not in listed:
            gone.append(body)
    return gone


def list_query(label_selector: str, continue_token: str | None) -> dict[str, str]:
    query = {"limit": str(PAGE_SIZE)}
    if label_selector:
        query["labelSelector"] = label_selector
    if continue_token:
        query["continue"] = continue_token
    return query


def watch_query(label_selector: str, resource_version: str) -> dict[str, str]:
    query = {
        "watch": "true",
        "allowWatchBookmarks": "true",
        "resourceVersion": resource_version,
        "timeoutSeconds": str(WATCH_SECONDS),
    }
    if label_selector:
        query["labelSelector"] = label_selector
    return query


def split_lines(buffer: bytearray) -> list[bytes]:
    """Take the complete lines out of ``buffer``; an unfinished last line stays in it."""
    end = buffer.rfind(b"\n")
    if end < 0:
        return []
    lines = [line for line in bytes(buffer[:end]).split(b"\n") if line.strip()]
    del buffer[: end + 1]
    return lines


def retry_delay(failures: int) -> float:
    """Doubling from RETRY_MIN_SECONDS up to RETRY_MAX_SECONDS, with jitter."""
    base = min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * 2.0 ** max(0, failures - 1))
    return base * random.uniform(0.5, 1.0)


async def json_lines(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    # Read in chunks, not aiohttp's readline: one object may be far longer than
    # its line limit (128 KiB); the API server stores objects up to 1.5 MiB.
    buffer = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        buffer += chunk
        for line in split_lines(buffer):
            yield line
    if buffer.strip():
        yield bytes(buffer)


class Informer:
    """Keeps one kind of object in one namespace (or all) flowing into the caches."""

    def __init__(self, api: KubeApi, watched: Watched, namespace: str | None) -> None:
        self.api = api
        self.watched = watched
        self.namespace = namespace
        self.listed = asyncio.Event()
        self.resource_version = ""

    def _observe(self, event_type: str | None, body: Body) -> None:
        try:
            self.watched.observe(event_type, body)
        except Exception:
            # One odd object must never stop the stream the others come through.
            log.exception("could not take in %s %s/%s", event_type or "LISTED", *key_of(body))

    async def list_all(self) -> None:
        """A full listing: every object reported, the vanished ones as deleted."""
        listed: set[ObjectKey] = set()
        token: str | None = None
        path = self.watched.path(self.namespace)
        while True:
            try:
                page = await self.api.read_list(
                    path, list_query(self.watched.label_selector, token)
                )
            except ApiError as error:
                if error.status == 410 and token:
                    # The continue token expired between pages: start over.
                    listed.clear()
                    token = None
                    continue
                raise
            # A listing's items carry no apiVersion and kind; watch events' objects do.
            api_version = page.get("apiVersion")
            kind = str(page.get("kind") or "").removesuffix("List")
            for body in page.get("items") or []:
                body.setdefault("apiVersion", api_version)
                body.setdefault("kind", kind)
                listed.add(key_of(body))
                self._observe(None, body)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                self.resource_version = str(meta.get("resourceVersion") or "")
                break
        for body in vanished(listed, list(self.watched.cached()), self.namespace):
            self._observe("DELETED", body)
        self.listed.set()

    async def watch(self) -> None:
        """One watch request, until the API server ends it; raises Gone for 410."""
        query = watch_query(self.watched.label_selector, self.resource_version)
        async with self.api.watch(self.watched.path(self.namespace), query) as response:
            async for line in json_lines(response):
                try:
                    event = loads(line)
                except (ValueError, RecursionError) as error:
                    log.error(
                        "undecodable event for %s: %s", self.watched.where(self.namespace), error
                    )
                    continue
                event_type = event.get("type")
                body = event.get("object") or {}
                if event_type == "ERROR":
                    if body.get("code") == 410:
                        raise GoneError()
                    raise ApiError(int(body.get("code") or 500), body, "WATCH", response.url.path)
                version = (body.get("metadata") or {}).get("resourceVersion")
                if version:
                    self.resource_version = str(version)
                if event_type in ("ADDED", "MODIFIED", "DELETED"):
                    self._observe(event_type, body)

    async def run(self) -> None:
        failures = 0
        where = self.watched.where(self.namespace)
        while True:
            try:
                if not self.resource_version:
                    await self.list_all()
                began = time.monotonic()
                await self.watch()
                if time.monotonic() - began >= SHORT_WATCH_SECONDS:
                    failures = 0
                else:
                    # Ended at once, without an error: back off all the same,
                    # or a server that keeps doing so would be asked in a loop.
                    failures += 1
                    await asyncio.sleep(retry_delay(failures))
            except asyncio.CancelledError:
                raise
            except GoneError:
                log.info("watch of %s is too old to resume: listing again", where)
                self.resource_version = ""
            except Exception as error:
                failures += 1
                delay = retry_delay(failures)
                if isinstance(error, ApiError) and error.status == 410:
                    self.resource_version = ""
                log.warning("watch of %s failed (%s); again in %.1f s", where, error, delay)
                await asyncio.sleep(delay)


def start_informers(
    api: KubeApi, kinds: Iterable[Watched], namespaces: Iterable[str]
) -> list[Informer]:
    """An informer per kind and namespace (one per kind for all namespaces)."""
    scopes: list[str | None] = list(namespaces) or [None]
    return [Informer(api, watched, namespace) for watched in kinds for namespace in scopes]
