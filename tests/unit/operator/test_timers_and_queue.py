"""The one scheduler and the work queue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from cronfleet.timers import Timers
from cronfleet.workqueue import WorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment


def test_timers_fire_in_order_and_replacements_win() -> None:
    clock = FakeClock()
    fired: list[str] = []
    timers: Timers[str] = Timers(clock, fired.append)
    start = clock.moment
    timers.schedule("late", start + timedelta(seconds=30))
    timers.schedule("early", start + timedelta(seconds=10))
    timers.schedule("moved", start + timedelta(seconds=5))
    timers.schedule("moved", start + timedelta(seconds=20))
    timers.schedule("gone", start + timedelta(seconds=1))
    timers.cancel("gone")
    assert timers._pop_due() == 10.0
    clock.moment = start + timedelta(seconds=25)
    timers._pop_due()
    assert fired == ["early", "moved"]
    clock.moment = start + timedelta(seconds=31)
    assert timers._pop_due() is None
    assert fired == ["early", "moved", "late"]
    assert len(timers) == 0


def test_work_queue_deduplicates_and_requeues_changes_during_work() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        queue.add("a")
        queue.add("b")
        assert len(queue) == 2
        taken = [await queue.get()]
        queue.add("a")  # changed while a worker holds it
        taken.append(await queue.get())
        queue.done("a")
        taken.append(await queue.get())
        queue.done("b")
        queue.done("a")
        assert queue.idle()
        return taken

    assert asyncio.run(scenario()) == ["a", "b", "a"]


def test_a_due_timer_goes_before_queued_status_changes() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        for key in ("job-update-1", "job-update-2", "fire-time"):
            queue.add(key)
        queue.add_urgent("fire-time")  # already queued: raised, not queued twice
        queue.add_urgent("retry-due")
        assert len(queue) == 4
        taken = [await queue.get() for _ in range(4)]
        for key in taken:
            queue.done(key)
        assert queue.idle() and len(queue) == 0
        return taken

    assert asyncio.run(scenario()) == ["fire-time", "retry-due", "job-update-1", "job-update-2"]


def test_an_urgent_change_during_work_is_served_first_once_the_worker_is_done() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        held = await queue.get()
        queue.add("b")
        queue.add_urgent("a")  # its timer came due while a worker held it
        queue.done(held)
        return [await queue.get(), await queue.get()]

    assert asyncio.run(scenario()) == ["a", "b"]
