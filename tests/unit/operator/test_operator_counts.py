"""What the operator counts about itself: writes sent, Schedules judged since start."""

from __future__ import annotations

import asyncio

import kopf
import pytest

from cronfleet.config import OperatorConfig
from cronfleet.controller import Controller
from cronfleet.kubeapi import KubeApi, NotLeaderError


class Switch:
    """Leadership the test turns on and off."""

    def __init__(self) -> None:
        self.leading = True

    def is_leading(self) -> bool:
        return self.leading

    async def wait_leading(self) -> None:
        return None

    async def release(self) -> None:
        return None


def test_writes_sent_are_counted_apart_from_reads() -> None:
    async def scenario() -> None:
        async def login() -> kopf.ConnectionInfo:
            raise ConnectionError("no API server in a unit test")

        leader = Switch()
        controller = Controller(
            api=KubeApi(login), config=OperatorConfig(metrics_port=0), leader=leader
        )
        assert controller.metrics is not None
        registry = controller.metrics.registry
        with pytest.raises(ConnectionError):
            await controller.api.read_lease("ops", "cronfleet-operator")
        assert registry.get_sample_value("cronfleet_api_writes_total") == 0
        with pytest.raises(ConnectionError):
            await controller.api.create("/api/v1/namespaces/ops/events", {})
        assert registry.get_sample_value("cronfleet_api_writes_total") == 1
        # A standby's refused write is not sent, so not counted.
        leader.leading = False
        with pytest.raises(NotLeaderError):
            await controller.api.create("/api/v1/namespaces/ops/events", {})
        assert registry.get_sample_value("cronfleet_api_writes_total") == 1
        assert registry.get_sample_value("cronfleet_schedules_reconciled") == 0
        await controller.api.close()

    asyncio.run(scenario())
