"""The watch handlers run on the event loop, never in kopf's thread pool."""

from __future__ import annotations

import inspect

import pytest

from cronfleet.handlers import cronjobs, jobs, pods, schedules, serviceaccounts


@pytest.mark.parametrize(
    "handler",
    [
        cronjobs.cronjob_event,
        jobs.job_event,
        pods.pod_event,
        schedules.schedule_event,
        serviceaccounts.service_account_event,
    ],
)
def test_watch_handlers_are_coroutines_so_kopf_calls_them_on_the_loop(handler: object) -> None:
    # kopf hands a plain function to its executor: it would then change the
    # controller's caches, and release its asyncio queue's semaphore, from
    # another thread than the one the workers run on.
    assert inspect.iscoroutinefunction(handler)
