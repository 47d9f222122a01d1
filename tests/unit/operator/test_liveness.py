"""The liveness probe fails once the timers loop or a worker has stopped."""

from __future__ import annotations

import asyncio

import kopf
import pytest

from cronfleet.liveness import check_background, stopped_tasks


async def forever() -> None:
    await asyncio.Event().wait()


async def fails() -> None:
    raise RuntimeError("queue broken")


async def returns() -> None:
    return None


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_running_tasks_are_alive() -> None:
    async def check() -> list[str]:
        tasks = [asyncio.create_task(forever(), name=f"cronfleet-{i}") for i in range(3)]
        await settle()
        try:
            return stopped_tasks(tasks)
        finally:
            for task in tasks:
                task.cancel()

    assert asyncio.run(check()) == []


def test_each_stopped_task_says_how_it_ended() -> None:
    async def check() -> list[str]:
        running = asyncio.create_task(forever(), name="cronfleet-timers")
        failed = asyncio.create_task(fails(), name="cronfleet-0")
        returned = asyncio.create_task(returns(), name="cronfleet-1")
        cancelled = asyncio.create_task(forever(), name="cronfleet-2")
        tasks = [running, failed, returned, cancelled]
        await settle()
        cancelled.cancel()
        await settle()
        try:
            return stopped_tasks(tasks)
        finally:
            running.cancel()

    assert asyncio.run(check()) == [
        "cronfleet-0 failed: RuntimeError('queue broken')",
        "cronfleet-1 returned",
        "cronfleet-2 was cancelled",
    ]


class FakeController:
    def __init__(self, background: list[asyncio.Task[None]]) -> None:
        self.background = background


def test_probe_before_start_up_is_alive() -> None:
    assert check_background(None) == {"running": 0}


def test_probe_raises_permanently_when_a_worker_stopped() -> None:
    async def check() -> None:
        tasks = [
            asyncio.create_task(forever(), name="cronfleet-timers"),
            asyncio.create_task(fails(), name="cronfleet-0"),
        ]
        await settle()
        try:
            with pytest.raises(kopf.PermanentError, match="cronfleet-0 failed: RuntimeError"):
                check_background(FakeController(tasks))
        finally:
            tasks[0].cancel()

    asyncio.run(check())


def test_probe_counts_running_tasks() -> None:
    async def check() -> dict[str, int]:
        tasks = [asyncio.create_task(forever(), name=f"cronfleet-{i}") for i in range(4)]
        await settle()
        try:
            return check_background(FakeController(tasks))
        finally:
            for task in tasks:
                task.cancel()

    assert asyncio.run(check()) == {"running": 4}
