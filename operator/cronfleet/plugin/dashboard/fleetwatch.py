"""The Schedules the dashboard shows, kept current by one watch with the user's credentials.

The watch runs in a thread (the official client blocks); every change it sees
is handed to the event loop, which alone owns the cache, so pages and
long-polls read it without locks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import kubernetes.watch
from kubernetes.client.exceptions import ApiException

from cronfleet.models import GROUP, PLURAL, VERSION
from cronfleet.plugin.api import api_error, custom_objects
from cronfleet.plugin.kubeconfig import PluginError, Session

Key = tuple[str, str]
# The API server ends each watch after this long; the next one resumes where it ended.
WATCH_SECONDS = 30
RETRY_SECONDS = 3.0


def key_of(schedule: dict[str, Any]) -> Key:
    metadata = schedule.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


class FleetCache:
    """Schedules by (namespace, name), a version that grows with every change, and waiters."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.version = 0
        self.synced = False
        self.error = ""
        self._changed = asyncio.Event()

    def _bump(self) -> None:
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def reset(self, items: list[dict[str, Any]]) -> None:
        self.objects = {key_of(item): item for item in items}
        self.synced, self.error = True, ""
        self._bump()

    def apply(self, kind: str, schedule: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.objects.pop(key_of(schedule), None)
        elif kind in ("ADDED", "MODIFIED"):
            self.objects[key_of(schedule)] = schedule
        else:
            return
        self._bump()

    def fail(self, message: str) -> None:
        if message != self.error:
            self.error = message
            self._bump()

    def schedules(self) -> list[dict[str, Any]]:
        return list(self.objects.values())

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((namespace, name))

    async def changed_since(self, version: int, timeout: float) -> bool:
        """Wait until the version moves past ``version``; False when ``timeout`` ran out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.version == version:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return False
        return True


class ScheduleWatch:
    """List, then watch from the list's resourceVersion; list again when the watch breaks."""

    def __init__(
        self,
        session: Session,
        namespace: str | None,
        cache: FleetCache,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.session = session
        self.namespace = namespace
        self.cache = cache
        self.loop = loop
        self._stopping = threading.Event()
        self._watch: kubernetes.watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name="schedule-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()  # type: ignore[no-untyped-call]

    def _post(self, call: Callable[..., None], *args: Any) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(call, *args)

    def _lister(self) -> tuple[Callable[..., Any], tuple[str, ...]]:
        api = custom_objects(self.session)
        if self.namespace is None:
            return api.list_cluster_custom_object, (GROUP, VERSION, PLURAL)
        return api.list_namespaced_custom_object, (GROUP, VERSION, self.namespace, PLURAL)

    def _where(self) -> str:
        return f'namespace "{self.namespace}"' if self.namespace else "all namespaces"

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._list_and_watch()
            except ApiException as error:
                if error.status == 410:  # the resourceVersion expired: list again at once
                    continue
                message = str(api_error(error, f"schedules in {self._where()}"))
                self._post(self.cache.fail, message)
            except PluginError as error:
                self._post(self.cache.fail, str(error))
            except Exception as error:  # the API server unreachable, a dropped stream
                self._post(self.cache.fail, f"watching schedules in {self._where()}: {error}")
            self._stopping.wait(RETRY_SECONDS)

    def _list_and_watch(self) -> None:
        lister, args = self._lister()
        listed = lister(*args)
        self._post(self.cache.reset, list(listed.get("items") or []))
        version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        while not self._stopping.is_set():
            self._watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            started = time.monotonic()
            for event in self._watch.stream(  # type: ignore[no-untyped-call]
                lister, *args, resource_version=version, timeout_seconds=WATCH_SECONDS
            ):
                if self._stopping.is_set():
                    return
                kind, body = event.get("type"), event.get("object")
                if kind == "ERROR":
                    return  # the next round lists again
                if isinstance(body, dict):
                    version = str((body.get("metadata") or {}).get("resourceVersion") or version)
                    self._post(self.cache.apply, str(kind), body)
            if self._watch.resource_version:
                version = str(self._watch.resource_version)
            # A watch that ends at once every time would spin: pace it.
            if time.monotonic() - started < 1:
                self._stopping.wait(1)


__all__ = ["FleetCache", "ScheduleWatch", "key_of"]
