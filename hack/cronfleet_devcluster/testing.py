"""Helpers for tests that run against a real cluster: polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class EventuallyTimeoutError(AssertionError):
    """What was awaited did not happen in time; the message says what was last seen."""


def eventually(
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.25,
    what: str = "condition",
) -> T:
    """Call ``probe`` until it returns something truthy, or fail after ``timeout`` seconds.

    Exceptions raised by the probe count as "not yet" until the deadline;
    the last one is reported, so a failure says what was wrong.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
            if result:
                return result
            last = result
        except Exception as error:  # the object may not exist yet
            last = error
        if time.monotonic() >= deadline:
            raise EventuallyTimeoutError(
                f"{what} not reached within {timeout:.0f}s; last seen: {last!r}"
            )
        time.sleep(interval)
