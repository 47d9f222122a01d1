"""A standby controller keeps its caches but acts on nothing until it leads."""

from __future__ import annotations

import asyncio

import kopf
import pytest

from cronfleet.config import OperatorConfig
from cronfleet.controller import Controller
from cronfleet.kubeapi import KubeApi, NotLeaderError


class Switch:
    """Leadership the test turns on."""

    def __init__(self) -> None:
        self.leading = False
        self.changed = asyncio.Event()

    def is_leading(self) -> bool:
        return self.leading

    async def wait_leading(self) -> None:
        while not self.leading:
            await self.changed.wait()

    async def release(self) -> None:
        return None


def schedule(name: str) -> dict[str, object]:
    return {
        "metadata": {"namespace": "ops", "name": name, "uid": name, "resourceVersion": "1"},
        "spec": {"cron": "0 3 * * *", "task": "command", "params": {"argv": ["true"]}},
    }


def test_a_standby_fills_its_caches_takes_no_key_and_sends_no_write() -> None:
    async def scenario() -> None:
        logins: list[str] = []

        async def login() -> kopf.ConnectionInfo:
            logins.append("login")
            raise ConnectionError("no API server in a unit test")

        leader = Switch()
        controller = Controller(
            api=KubeApi(login), config=OperatorConfig(metrics_port=0), leader=leader
        )
        controller.observe_schedule("ADDED", schedule("backup"))
        controller.observe_schedule("ADDED", schedule("report"))
        controller.start(watch=False)
        try:
            for _ in range(20):
                await asyncio.sleep(0)
            # Cached, queued, but not taken by any worker.
            assert set(controller.schedules) == {("ops", "backup"), ("ops", "report")}
            assert len(controller.queue) == 2 and not controller.queue._active
            # Writes are refused before anything is sent; reads pass the gate.
            with pytest.raises(NotLeaderError):
                await controller.api.create("/api/v1/namespaces/ops/events", {})
            with pytest.raises(NotLeaderError):
                await controller.api.merge_patch(
                    "/apis/cronfleet.io/v1alpha1/namespaces/ops/schedules/backup/status", {}
                )
            assert logins == []
            with pytest.raises(ConnectionError):
                await controller.api.read_lease("ops", "cronfleet-operator")
            assert logins == ["login"]
            # Elected: every known Schedule is looked at at once.
            controller.queue = type(controller.queue)()
            controller.lead()
            assert len(controller.queue) == 2
        finally:
            await controller.stop()

    asyncio.run(scenario())
