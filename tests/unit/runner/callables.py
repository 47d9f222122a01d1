"""Functions the ``python`` task's tests call by reference."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from cronfleet_runner import PermanentFailure

cancelled = threading.Event()


def export_rows(table: str, limit: int = 10) -> dict[str, object]:
    return {"table": table, "exported": limit}


async def reindex(index: str) -> str:
    await asyncio.sleep(0)
    return f"reindexed {index}"


def nothing() -> None:
    return None


def explode() -> None:
    raise ValueError("the upstream API answered garbage")


def misconfigured() -> None:
    raise PermanentFailure("the report 'weekly' does not exist")


def opaque() -> object:
    return object()


def exits(code: int) -> None:
    raise SystemExit(code)


async def forever() -> None:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        cancelled.set()
        raise


class Jobs:
    @staticmethod
    def nightly() -> str:
        return "done"


NOT_CALLABLE = 42


def ignores_stop() -> None:
    # A non-daemon thread would hold an ordinary interpreter exit for a minute.
    threading.Thread(target=time.sleep, args=(60,), name="leftover").start()
    time.sleep(60)


def login(variable: str) -> None:
    # An exception that quotes a credential, as client libraries' errors sometimes do.
    raise RuntimeError(f"login refused for key {os.environ[variable]!r}")
