"""The operator's informers against the real API server: paged listings, the
watch after them, and a listing afresh (at start, or when the version to resume
from is too old) reporting objects deleted while nobody watched as deleted.

ConfigMaps stand in for the kinds the operator caches: the informer treats
every kind alike, and these need no controller to exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kopf
import pytest

from cronfleet import informers
from cronfleet.handlers.lifecycle import _login
from cronfleet.informers import Informer, Watched
from cronfleet.kubeapi import KubeApi
from cronfleet_devcluster.kube import CONFIGMAPS
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster

T = TypeVar("T")
LABEL = "cronfleet.io/informer-test"


@dataclass
class Seen:
    """What an informer handed over, kept as a cache the way the controller keeps its own."""

    events: list[tuple[str | None, str]] = field(default_factory=list)
    cache: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    kinds: set[tuple[str, str]] = field(default_factory=set)

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        name = body["metadata"]["name"]
        self.events.append((event_type, name))
        self.kinds.add((str(body.get("apiVersion")), str(body.get("kind"))))
        if event_type == "DELETED":
            self.cache.pop(name, None)
        else:
            self.cache[name] = body


@dataclass
class Loop:
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)


@pytest.fixture
def api(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[KubeApi, Loop]]:
    # The operator's login: no in-cluster account here, so the kubeconfig.
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = Loop(loop)
    client = KubeApi(lambda: _login(kopf.OperatorSettings()))
    try:
        yield client, runner
    finally:
        runner.run(client.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def config_map(name: str, value: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {LABEL: "yes"}},
        "data": {"value": value},
    }


def test_listing_pages_then_watching_reports_every_change_in_order(
    cluster: Cluster,
    namespace: str,
    api: tuple[KubeApi, Loop],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, loop = api
    for index in range(5):
        cluster.kube.create(CONFIGMAPS, config_map(f"cm-{index}"), namespace)
    cluster.kube.create(CONFIGMAPS, {"metadata": {"name": "unlabelled"}, "data": {}}, namespace)
    # Pages of two: the listing must follow the continue tokens to the end.
    monkeypatch.setattr(informers, "PAGE_SIZE", 2)
    seen = Seen()
    watched = Watched("/api/v1", "configmaps", seen.observe, seen.cache.values, f"{LABEL}=yes")
    informer = Informer(client, watched, namespace)
    task = loop.run(_start(informer))
    try:
        eventually(informer.listed.is_set, timeout=30)
        assert sorted(seen.events) == [(None, f"cm-{index}") for index in range(5)]
        # Listed items carry their kind, as watched objects do.
        assert seen.kinds == {("v1", "ConfigMap")}

        cluster.kube.create(CONFIGMAPS, config_map("cm-new"), namespace)
        cluster.kube.patch(CONFIGMAPS, "cm-0", {"data": {"value": "2"}}, namespace)
        cluster.kube.delete(CONFIGMAPS, "cm-1", namespace)
        eventually(lambda: ("DELETED", "cm-1") in seen.events, timeout=30)
        assert seen.events[5:] == [("ADDED", "cm-new"), ("MODIFIED", "cm-0"), ("DELETED", "cm-1")]
        assert seen.cache["cm-0"]["data"] == {"value": "2"}
        assert "unlabelled" not in seen.cache
    finally:
        loop.run(_stop(task))


def test_listing_afresh_drops_what_went_while_nobody_watched(
    cluster: Cluster, namespace: str, api: tuple[KubeApi, Loop]
) -> None:
    client, loop = api
    for name in ("kept", "changed"):
        cluster.kube.create(CONFIGMAPS, config_map(name), namespace)
    seen = Seen()
    # What an informer had cached before its watch broke: one object since
    # deleted, one since changed.
    seen.cache["deleted-meanwhile"] = {
        "metadata": {"namespace": namespace, "name": "deleted-meanwhile"}
    }
    seen.cache["changed"] = {
        **config_map("changed"),
        "metadata": {"namespace": namespace, "name": "changed"},
    }
    cluster.kube.patch(CONFIGMAPS, "changed", {"data": {"value": "2"}}, namespace)
    watched = Watched("/api/v1", "configmaps", seen.observe, seen.cache.values, f"{LABEL}=yes")
    informer = Informer(client, watched, namespace)
    # With no version to resume from (as after 410 Gone), it lists afresh.
    assert informer.resource_version == ""
    task = loop.run(_start(informer))
    try:
        eventually(informer.listed.is_set, timeout=30)
        assert ("DELETED", "deleted-meanwhile") in seen.events
        assert set(seen.cache) == {"kept", "changed"}
        assert seen.cache["changed"]["data"] == {"value": "2"}
        # And it watches again from the fresh listing.
        cluster.kube.delete(CONFIGMAPS, "kept", namespace)
        eventually(lambda: ("DELETED", "kept") in seen.events, timeout=30)
    finally:
        loop.run(_stop(task))


async def _start(informer: Informer) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(informer.run())


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
