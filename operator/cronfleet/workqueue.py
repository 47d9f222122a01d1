"""A de-duplicating work queue of Schedule keys, as in controller-runtime.

A key is queued at most once; a key that changes while a worker holds it is
queued again when the worker is done, so no change is lost and no Schedule
is reconciled by two workers at once.

Keys queued as urgent (a timer that came due: a run to start now) are served
before the others (watch events, most of them Job and pod status changes),
so a burst of status changes never makes a run start late.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

URGENT = 0
NORMAL = 1


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        # (priority, order, key); an entry whose priority is no longer the
        # key's (it was raised to urgent since) is skipped when it comes up.
        self._heap: list[tuple[int, int, K]] = []
        self._order = itertools.count()
        # One release per heap entry, so a waiting worker wakes for each.
        self._entries = asyncio.Semaphore(0)
        self._queued: dict[K, int] = {}
        self._active: set[K] = set()
        self._dirty: dict[K, int] = {}

    def add(self, key: K, urgent: bool = False) -> None:
        priority = URGENT if urgent else NORMAL
        if key in self._active:
            self._dirty[key] = min(priority, self._dirty.get(key, NORMAL))
            return
        if self._queued.get(key, NORMAL + 1) <= priority:
            return
        self._queued[key] = priority
        heapq.heappush(self._heap, (priority, next(self._order), key))
        self._entries.release()

    def add_urgent(self, key: K) -> None:
        self.add(key, urgent=True)

    async def get(self) -> K:
        while True:
            await self._entries.acquire()
            priority, _, key = heapq.heappop(self._heap)
            if self._queued.get(key) == priority:
                del self._queued[key]
                self._active.add(key)
                return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        priority = self._dirty.pop(key, None)
        if priority is not None:
            self.add(key, urgent=priority == URGENT)

    def __len__(self) -> int:
        return len(self._queued)

    def idle(self) -> bool:
        return not self._queued and not self._active
