"""Schedule events: cache the object and queue its reconcile."""

from __future__ import annotations

from typing import Any

import kopf

from cronfleet.controller import Controller
from cronfleet.models import GROUP, PLURAL, VERSION


@kopf.on.event(GROUP, VERSION, PLURAL)
async def schedule_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        controller.observe_schedule(event.get("type"), event["object"])
