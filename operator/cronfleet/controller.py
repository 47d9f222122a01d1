"""Carry out reconcile plans: the operator's acting side.

kopf's watch handlers feed the caches and queue keys; workers take a key,
read what is cached, ask ``reconcile.decide`` what to do, and do it: apply the
CronJob, post events, patch the status, and book the next look in the timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cronfleet.clock import Clock, SystemClock, to_rfc3339
from cronfleet.config import OperatorConfig
from cronfleet.kubeapi import (
    ApiError,
    KubeApi,
    cronjob_path,
    events_path,
    schedule_path,
    service_account_path,
)
from cronfleet.models import API_VERSION, KIND, Phase
from cronfleet.naming import SCHEDULE_LABEL, cronjob_name
from cronfleet.reconcile import Event, Observed, decide
from cronfleet.timers import Timers
from cronfleet.validation import ParamsCheck
from cronfleet.workqueue import WorkQueue

log = logging.getLogger("cronfleet.controller")

Key = tuple[str, str]  # (namespace, schedule name)
Body = dict[str, Any]

ERROR_BACKOFF_MAX = 60.0


def known_tasks(config: OperatorConfig) -> frozenset[str] | None:
    """Task names Schedules may use: configured, else the runner's built-in ones."""
    if config.known_tasks:
        return config.known_tasks
    try:
        from cronfleet_runner.registry import builtin_task_schemas  # noqa: PLC0415

        return frozenset(builtin_task_schemas())
    except Exception as error:  # not installed beside the operator, or broken: do not guess
        log.warning("task names are not checked: the runner's registry is unavailable (%s)", error)
        return None


def params_check() -> ParamsCheck | None:
    """The runner's own params validation for its built-in tasks, when it is installed."""
    try:
        from cronfleet_runner.registry import validate_builtin_params  # noqa: PLC0415
    except Exception:
        return None
    return validate_builtin_params


@dataclass
class Controller:
    api: KubeApi
    config: OperatorConfig
    clock: Clock = field(default_factory=SystemClock)
    schedules: dict[Key, Body] = field(default_factory=dict)
    cronjobs: dict[Key, Body] = field(default_factory=dict)  # by (namespace, CronJob name)
    failures: dict[Key, int] = field(default_factory=dict)
    tasks: frozenset[str] | None = None
    reconciles: int = 0

    def __post_init__(self) -> None:
        self.queue: WorkQueue[Key] = WorkQueue()
        self.timers: Timers[Key] = Timers(self.clock, self.queue.add)
        self._background: list[asyncio.Task[None]] = []
        self.instance = os.environ.get("HOSTNAME") or socket.gethostname()
        if self.tasks is None:
            self.tasks = known_tasks(self.config)
        self.check_params = params_check()

    # -- watch side (called by kopf handlers) -------------------------------------

    def observe_schedule(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if event_type == "DELETED":
            self.schedules.pop(key, None)
            self.timers.cancel(key)
            self.failures.pop(key, None)
            return
        self.schedules[key] = dict(body)
        self.queue.add(key)

    def observe_cronjob(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        namespace = meta["namespace"]
        cache_key = (namespace, meta["name"])
        if event_type == "DELETED":
            self.cronjobs.pop(cache_key, None)
        else:
            self.cronjobs[cache_key] = dict(body)
        owner = next(
            (ref["name"] for ref in meta.get("ownerReferences") or [] if ref.get("kind") == KIND),
            (meta.get("labels") or {}).get(SCHEDULE_LABEL),
        )
        if owner and (namespace, owner) in self.schedules:
            self.queue.add((namespace, owner))

    # -- workers ------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self.timers.run(), name="cronfleet-timers"))
        for index in range(self.config.workers):
            self._background.append(loop.create_task(self._worker(), name=f"cronfleet-{index}"))

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        await self.api.close()

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.reconcile(key)
                self.failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Never let one Schedule stop the others: log, back off, retry.
                count = self.failures.get(key, 0) + 1
                self.failures[key] = count
                delay = min(ERROR_BACKOFF_MAX, 0.5 * 2**count)
                log.warning("reconcile of %s/%s failed (%s); again in %.0fs", *key, error, delay)
                self.timers.schedule(key, self.clock.now() + timedelta(seconds=delay))
            finally:
                self.queue.done(key)

    # -- one reconcile ---------------------------------------------------------------------

    async def reconcile(self, key: Key) -> None:
        schedule = self.schedules.get(key)
        if schedule is None or schedule["metadata"].get("deletionTimestamp"):
            return
        self.reconciles += 1
        namespace, name = key
        spec = schedule.get("spec") or {}
        account = spec.get("serviceAccountName")
        account_exists: bool | None = None
        if account:
            found = await self.api.get_or_none(service_account_path(namespace, account))
            account_exists = found is not None
        now = self.clock.now()
        observed = Observed(
            schedule=schedule,
            cronjob=self.cronjobs.get((namespace, cronjob_name(name))),
            service_account_exists=account_exists,
            known_tasks=self.tasks,
            check_params=self.check_params,
        )
        plan = decide(observed, self.config, now)

        if plan.apply_cronjob is not None:
            try:
                applied = await self.api.apply(
                    cronjob_path(namespace, cronjob_name(name)), plan.apply_cronjob
                )
                # Cache what the server holds now, so the next reconcile does
                # not apply again before the watch has caught up.
                self.cronjobs[(namespace, cronjob_name(name))] = applied
                log.info("applied CronJob %s/%s", namespace, cronjob_name(name))
            except ApiError as error:
                if not _rejects_input(error):
                    raise
                # The API server rejected what the spec produced: that is the
                # user's input, so it is reported like any other invalid spec.
                message = f"the CronJob for this spec was rejected: {error.message}"
                plan.status_patch = {
                    "phase": Phase.INVALID.value,
                    "message": message,
                    "observedGeneration": schedule["metadata"].get("generation"),
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "False",
                            "reason": "InvalidSpec",
                            "message": message,
                            "observedGeneration": schedule["metadata"].get("generation"),
                            "lastTransitionTime": to_rfc3339(now),
                        }
                    ],
                }
                status = schedule.get("status") or {}
                if status.get("message") != message:
                    plan.events = [Event("Warning", "InvalidSpec", message)]
                else:
                    plan.events = []
                    plan.status_patch = {}

        for event in plan.events:
            await self.post_event(schedule, event)
        if plan.status_patch:
            updated = await self.api.merge_patch(
                schedule_path(namespace, name, "status"), {"status": plan.status_patch}
            )
            if key in self.schedules:
                self.schedules[key] = updated
        if plan.requeue_at is not None:
            self.timers.schedule(key, plan.requeue_at)
        else:
            self.timers.cancel(key)

    async def post_event(self, schedule: Mapping[str, Any], event: Event) -> None:
        meta = schedule["metadata"]
        stamp = to_rfc3339(self.clock.now())
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": "cronfleet"},
            "reportingComponent": "cronfleet.io/operator",
            "reportingInstance": self.instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.api.create(events_path(meta["namespace"]), body)
        except ApiError as error:
            # An event that cannot be written must not block the reconcile.
            log.warning("event %s for %s/%s not posted: %s", event.reason, *_key(meta), error)


def _rejects_input(error: ApiError) -> bool:
    """Whether the API server refused the object for what it holds (not a passing fault)."""
    if error.status in (400, 422):
        return True
    # Server-side apply reports some invalid values as a failed conversion.
    return error.status == 500 and "unable to convert" in error.message


def _key(meta: Mapping[str, Any]) -> Key:
    return (meta["namespace"], meta["name"])
