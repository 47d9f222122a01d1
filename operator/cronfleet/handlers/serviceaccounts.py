"""ServiceAccount events: which accounts exist, so a Schedule naming one costs no request."""

from __future__ import annotations

from typing import Any

import kopf

from cronfleet.controller import Controller


@kopf.on.event("", "v1", "serviceaccounts")
async def service_account_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        controller.observe_service_account(event.get("type"), event["object"])
