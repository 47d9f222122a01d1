"""Operator start-up, login and shutdown."""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from cronfleet.config import OperatorConfig
from cronfleet.controller import Controller
from cronfleet.kubeapi import KubeApi
from cronfleet.login import in_cluster_login


async def _login(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    info = (
        in_cluster_login(settings, os.environ)
        or kopf.login_with_service_account(settings=settings)
        or kopf.login_with_kubeconfig(settings=settings)
    )
    if info is None:
        raise kopf.LoginError("no in-cluster service account and no kubeconfig to log in with")
    return info


@kopf.on.login()
async def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    return await _login(settings)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # One replica acts alone; peering would need its own CRD.
    settings.peering.standalone = True
    # kopf keeps its bookkeeping in annotations under our prefix. By default it
    # also writes status.kopf, which the Schedule's structural schema prunes:
    # kopf would then never see its own progress and stall.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="cronfleet.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="cronfleet.io", key="last-handled-configuration"
    )
    # cronfleet posts its own events with stable reasons; kopf's are noise.
    settings.posting.level = logging.ERROR
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    config: OperatorConfig = memo.get("config") or OperatorConfig.from_env()
    controller = Controller(api=KubeApi(lambda: _login(settings)), config=config)
    memo["controller"] = controller
    if config.metrics_port and controller.metrics is not None:
        controller.metrics.serve(config.metrics_port)
    controller.start()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        await controller.stop()
