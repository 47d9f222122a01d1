"""Operator start-up, login and shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf

from cronfleet.config import OperatorConfig
from cronfleet.controller import Controller
from cronfleet.kubeapi import KubeApi
from cronfleet.leaderelection import (
    ElectionSettings,
    LeaderElector,
    Leadership,
    Unelected,
    exit_process,
    settings_from,
)
from cronfleet.login import in_cluster_login
from cronfleet.metricsauth import MetricsAuth
from cronfleet.metricsserver import MetricsServer, serve_authenticated_metrics


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
    # kopf's peering is off: with several replicas, cronfleet's own leader
    # election (cronfleet.leaderelection) decides which one acts.
    settings.peering.standalone = True
    # cronfleet posts its own events with stable reasons; kopf's are noise.
    settings.posting.level = logging.ERROR
    config: OperatorConfig = memo.get("config") or OperatorConfig.from_env()
    api = KubeApi(lambda: _login(settings))
    election: ElectionSettings | None = (
        memo["election"] if "election" in memo else settings_from(os.environ)
    )
    elector = None
    leader: Leadership = Unelected()
    if election is not None:
        # A standby posts nothing, kopf's error events included, until it leads.
        settings.posting.enabled = False
        elector = LeaderElector(
            api, election, on_started_leading=lambda: None, on_stopped_leading=exit_process
        )
        leader = elector
    controller = Controller(api=api, config=config, leader=leader)
    memo["controller"] = controller
    if config.metrics_port and controller.metrics is not None:
        if config.metrics_auth is MetricsAuth.KUBERNETES:
            memo["metrics_server"] = await serve_authenticated_metrics(
                controller.metrics.registry,
                config.metrics_port,
                api,
                config.metrics_cert_file,
                config.metrics_key_file,
            )
        else:
            controller.metrics.serve(config.metrics_port)
    controller.start()
    if elector is not None:

        def started_leading() -> None:
            settings.posting.enabled = True
            controller.lead()

        elector.on_started_leading = started_leading
        # Among the background tasks, so the liveness probe sees it stop.
        controller.background.append(
            asyncio.get_running_loop().create_task(elector.run(), name="cronfleet-election")
        )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    metrics_server: MetricsServer | None = memo.get("metrics_server")
    if metrics_server is not None:
        await metrics_server.stop()
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        await controller.stop()
