"""The liveness probe: alive only while the timers loop and all the workers are running.

kopf answers ``--liveness`` (``/healthz``) as long as its own tasks run, but
the controller's background tasks are ours: were the timers loop or a worker
to stop, the watch would keep queueing keys that nothing takes, and the
operator would look healthy while reconciling nothing. A probe handler that
raises makes kopf answer 500, and Kubernetes restarts the pod.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import kopf

from cronfleet.controller import Controller


class Background(Protocol):
    """What the probe looks at: the controller's timers loop and workers."""

    @property
    def background(self) -> Sequence[asyncio.Task[Any]]: ...


def stopped_tasks(tasks: Iterable[asyncio.Task[Any]]) -> list[str]:
    """One sentence per task that is no longer running, saying how it ended."""
    stopped = []
    for task in tasks:
        if not task.done():
            continue
        if task.cancelled():
            stopped.append(f"{task.get_name()} was cancelled")
        elif (error := task.exception()) is not None:
            stopped.append(f"{task.get_name()} failed: {error!r}")
        else:
            stopped.append(f"{task.get_name()} returned")
    return stopped


def check_background(controller: Background | None) -> dict[str, int]:
    """The probe's answer: how many background tasks run; raises if any has stopped."""
    if controller is None:
        return {"running": 0}  # still starting: the startup handler creates it
    stopped = stopped_tasks(controller.background)
    if stopped:
        # Permanent: kopf would otherwise retry the probe with a backoff while the
        # HTTP request waits, and the kubelet would see a time-out, not the reason.
        raise kopf.PermanentError("; ".join(stopped))
    return {"running": len(controller.background)}


@kopf.on.probe(id="background", errors=kopf.ErrorsMode.PERMANENT)
async def background(memo: kopf.Memo, **_: Any) -> dict[str, int]:
    controller: Controller | None = memo.get("controller")
    return check_background(controller)
