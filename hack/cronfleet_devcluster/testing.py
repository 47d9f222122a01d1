"""Helpers for tests that run against a real cluster: polling with a deadline, and a
namespace of its own for each test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

from cronfleet_devcluster.kube import NAMESPACES, SERVICEACCOUNTS, Kube

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


@contextmanager
def namespace_for_test(kube: Kube, test_name: str, labels: Mapping[str, str]) -> Iterator[str]:
    """A new namespace named after the test, deleted afterwards.

    Yielded only once its default ServiceAccount exists: before that, the API
    server refuses the pods of every Job created there.
    """
    base = test_name.lower().replace("_", "-")
    base = "".join(ch for ch in base if ch.isalnum() or ch == "-").strip("-")[:40]
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    kube.create(
        NAMESPACES,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels)},
        },
    )
    eventually(
        lambda: kube.get_or_none(SERVICEACCOUNTS, "default", name),
        timeout=30,
        what=f"default ServiceAccount in {name}",
    )
    try:
        yield name
    finally:
        kube.delete(NAMESPACES, name)
