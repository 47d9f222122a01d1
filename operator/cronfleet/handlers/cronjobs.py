"""Owned CronJob events: a change or deletion by anyone re-reconciles the Schedule."""

from __future__ import annotations

from typing import Any

import kopf

from cronfleet.controller import Controller
from cronfleet.naming import MANAGED_BY, MANAGED_BY_LABEL


@kopf.on.event("batch", "v1", "cronjobs", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def cronjob_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        controller.observe_cronjob(event.get("type"), event["object"])
