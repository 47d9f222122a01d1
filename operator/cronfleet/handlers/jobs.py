"""Events of the Jobs runs are made of, whether the CronJob or the operator made them."""

from __future__ import annotations

from typing import Any

import kopf

from cronfleet.controller import Controller
from cronfleet.naming import MANAGED_BY, MANAGED_BY_LABEL


@kopf.on.event("batch", "v1", "jobs", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def job_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        controller.observe_job(event.get("type"), event["object"])
