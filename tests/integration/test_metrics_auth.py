"""/metrics with ``CRONFLEET_METRICS_AUTH=kubernetes``: the API server decides who may scrape.

The operator's own metrics server and API client (logged in as the operator
logs in, from the kubeconfig) run in this process against the real control
plane; the tokens are real ServiceAccount tokens from the TokenRequest API,
reviewed by the real authenticator and RBAC authorizer.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import kopf
import pytest

from cronfleet.handlers.lifecycle import _login
from cronfleet.kubeapi import KubeApi
from cronfleet.metrics import Metrics
from cronfleet.metricsserver import MetricsServer, serve_authenticated_metrics
from cronfleet_devcluster.controlplane import free_port
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster
from tests.integration.test_chart import CLUSTERROLEBINDINGS, CLUSTERROLES, scrape, user_token

T = TypeVar("T")


@dataclass
class Served:
    url: str
    loop: asyncio.AbstractEventLoop
    requests: list[int]  # API requests the operator's client sent, one count

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)


@pytest.fixture
def served(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    # The operator's login: no in-cluster account here, so the kubeconfig.
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = free_port()
    api = KubeApi(lambda: _login(kopf.OperatorSettings()))
    requests = [0]

    def count() -> None:
        requests[0] += 1

    api.on_request = count
    metrics = Metrics(lambda: [])
    served = Served(f"https://127.0.0.1:{port}/metrics", loop, requests)

    async def start() -> MetricsServer:
        return await serve_authenticated_metrics(metrics.registry, port, api)

    server = served.run(start())
    try:
        yield served
    finally:
        served.run(server.stop())
        served.run(api.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_only_tokens_allowed_to_get_metrics_can_scrape(
    cluster: Cluster, namespace: str, served: Served
) -> None:
    reader = f"{namespace}-metrics-reader"
    cluster.kube.create(
        CLUSTERROLES,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": reader},
            "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
        },
    )
    try:
        # No token, a made-up one: 401, as the API server would answer.
        assert scrape(served.url)[0] == 401
        assert scrape(served.url, "not-a-real-token")[0] == 401

        # A real ServiceAccount's token, without the role: 403.
        token = user_token(cluster, namespace, "prometheus")
        status, body = scrape(served.url, token)
        assert (status, body) == (403, "Forbidden\n")

        # Bound to the metrics-reader role: the series. A refusal is remembered
        # for a few seconds, so the binding shows within the deadline.
        cluster.kube.create(
            CLUSTERROLEBINDINGS,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": reader},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": reader,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "prometheus", "namespace": namespace}
                ],
            },
        )

        def allowed() -> str | None:
            status, text = scrape(served.url, token)
            return text if status == 200 else None

        body = eventually(allowed, timeout=30, interval=1, what="a 200 for the bound account")
        assert "# TYPE cronfleet_runs_total counter" in body
        assert "cronfleet_schedule_metric_errors_total 0.0" in body

        # The allowed answer is reused: further scrapes send no review.
        before = served.requests[0]
        for _ in range(3):
            assert scrape(served.url, token)[0] == 200
        assert served.requests[0] == before
    finally:
        cluster.kube.delete(CLUSTERROLEBINDINGS, reader)
        cluster.kube.delete(CLUSTERROLES, reader)


def test_plain_http_is_not_served(served: Served) -> None:
    plain = served.url.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(plain, timeout=5).read()
