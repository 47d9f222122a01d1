"""The operator's one scheduler for time-based work.

Every "look at this Schedule again at T" (a next-run refresh, a retry due, a
recheck) is one entry in one heap, served by one task that sleeps until the
earliest entry. Ten thousand idle Schedules are ten thousand heap entries and
no API calls; there is no timer or polling loop per object.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Generic, TypeVar

from cronfleet.clock import Clock

K = TypeVar("K", bound=Hashable)


class Timers(Generic[K]):
    def __init__(self, clock: Clock, on_due: Callable[[K], None]) -> None:
        self._clock = clock
        self._on_due = on_due
        self._heap: list[tuple[datetime, int, K]] = []
        self._due: dict[K, datetime] = {}
        self._order = itertools.count()
        self._changed = asyncio.Event()

    def schedule(self, key: K, at: datetime) -> None:
        """Wake ``key`` at ``at``; a later call for the same key replaces the earlier."""
        if self._due.get(key) == at:
            return
        self._due[key] = at
        heapq.heappush(self._heap, (at, next(self._order), key))
        if self._heap[0][2] == key:
            self._changed.set()

    def cancel(self, key: K) -> None:
        self._due.pop(key, None)

    def due_at(self, key: K) -> datetime | None:
        return self._due.get(key)

    def __len__(self) -> int:
        return len(self._due)

    def _pop_due(self) -> float | None:
        """Fire what is due; return the seconds until the next entry (None: nothing left)."""
        now = self._clock.now()
        while self._heap:
            at, _, key = self._heap[0]
            if self._due.get(key) != at:  # replaced or cancelled
                heapq.heappop(self._heap)
                continue
            if at > now:
                return (at - now).total_seconds()
            heapq.heappop(self._heap)
            del self._due[key]
            self._on_due(key)
        return None

    async def run(self) -> None:
        while True:
            wait = self._pop_due()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=wait)
