"""Events of the runs' pods: where the exit code and the runner's message are."""

from __future__ import annotations

from typing import Any

import kopf

from cronfleet.controller import Controller
from cronfleet.naming import MANAGED_BY, MANAGED_BY_LABEL


@kopf.on.event("", "v1", "pods", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def pod_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        controller.observe_pod(event.get("type"), event["object"])
