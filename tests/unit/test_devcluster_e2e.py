"""`make e2e`'s driver: where it refuses to run, and that a node that cannot start fails it."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import urllib.error
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cronfleet.metrics import Metrics
from cronfleet.metricsauth import DecisionCache
from cronfleet.metricsserver import MetricsServer, ScrapeAuthorizer, server_ssl_context
from cronfleet_devcluster import e2e
from cronfleet_devcluster.controlplane import ControlPlane, ControlPlaneError, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_default_tests_exist() -> None:
    for test_file in e2e.DEFAULT_TESTS:
        assert (REPO_ROOT / test_file).is_file(), test_file


def test_refuses_to_run_off_the_real_node(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CRONFLEET_NODE", raising=False)
    assert e2e.main([]) == 2
    assert "CRONFLEET_NODE=kubelet" in capsys.readouterr().err


def test_a_node_that_cannot_start_fails_the_run_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def start(self: ControlPlane, timeout: float = 120.0) -> float:
        raise ControlPlaneError("kubelet exited during start-up; last lines of its log: boom")

    monkeypatch.setenv("CRONFLEET_NODE", "kubelet")
    monkeypatch.setenv("CRONFLEET_E2E_DIR", str(tmp_path))
    monkeypatch.setattr(e2e, "default_image_archives", lambda: (tmp_path / "runner.tar",))
    monkeypatch.setattr(ControlPlane, "start", start)
    monkeypatch.setattr(ControlPlane, "stop", lambda self, grace=10.0: None)
    assert e2e.main([]) == 1
    err = capsys.readouterr().err
    assert "the control plane with the real node did not start" in err
    assert "kubelet exited during start-up" in err


def test_missing_image_archives_fail_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def start(self: ControlPlane, timeout: float = 120.0) -> float:
        raise AssertionError("started without images")

    monkeypatch.setenv("CRONFLEET_NODE", "kubelet")
    monkeypatch.setenv("CRONFLEET_E2E_DIR", str(tmp_path))
    monkeypatch.setattr(e2e, "default_image_archives", tuple)
    monkeypatch.setattr(ControlPlane, "start", start)
    assert e2e.main([]) == 1
    assert "make images" in capsys.readouterr().err


# -- /metrics as the chart serves it: HTTPS, a token the API server must allow ----------


def test_the_scraping_account_is_bound_to_the_charts_metrics_reader_role() -> None:
    binding = e2e.metrics_reader_binding()
    template = (REPO_ROOT / "charts" / "cronfleet" / "templates" / "metrics-rbac.yaml").read_text()
    assert "name: {{ $fullname }}-metrics-reader" in template
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": f"{e2e.FULLNAME}-metrics-reader",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": e2e.METRICS_READER, "namespace": e2e.RELEASE_NAMESPACE}
    ]
    assert ("create", "tokenreviews.authentication.k8s.io") in e2e.ALLOWED


class _Reviews:
    """The API server's answers for one good token (the reviews' logic is unit-tested apart)."""

    async def create_token_review(self, body: Mapping[str, Any]) -> dict[str, Any]:
        good = body["spec"]["token"] == "good-token"
        return {"status": {"authenticated": good, "user": {"username": "scraper"}}}

    async def create_subject_access_review(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"status": {"allowed": True}}


@pytest.fixture
def https_metrics() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = free_port()
    server = MetricsServer(
        Metrics(lambda: []).registry,
        port,
        authorizer=ScrapeAuthorizer(_Reviews(), DecisionCache()),
        ssl_context=server_ssl_context(),
        host="127.0.0.1",
    )
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
    try:
        yield f"https://127.0.0.1:{port}/metrics"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_the_scrape_sends_the_token_and_accepts_the_self_signed_certificate(
    https_metrics: str,
) -> None:
    assert "# TYPE cronfleet_runs_total counter" in e2e.scrape_metrics(https_metrics, "good-token")
    with pytest.raises(urllib.error.HTTPError) as refused:
        e2e.scrape_metrics(https_metrics, "bad-token")
    assert refused.value.code == 401


def test_the_tests_get_the_metrics_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.update(kwargs["env"])
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(subprocess, "run", run)
    driver = e2e.Driver(tmp_path)
    assert driver.run_tests("https://10.88.0.5:8080/metrics", "tok", []) == 0
    assert seen["CRONFLEET_TEST_METRICS_URL"] == "https://10.88.0.5:8080/metrics"
    assert seen["CRONFLEET_TEST_METRICS_TOKEN"] == "tok"
