"""`make demo` points the examples' http Schedules at a server on 127.0.0.1 and serves
the paths they call, so no demo run looks up or calls another host."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from cronfleet_devcluster.demo import examples
from cronfleet_devcluster.endpoints import local_url, localise, serve


def test_local_url_keeps_path_and_query() -> None:
    assert (
        local_url("http://feeds.default.svc/fetch?x=1", 8123) == "http://127.0.0.1:8123/fetch?x=1"
    )
    assert local_url("https://sync.tenant-acme.svc:8443", 8123) == "http://127.0.0.1:8123/"


def test_every_example_the_demo_applies_calls_only_the_local_server() -> None:
    originals = examples()
    documents, paths = localise(originals, 8123)
    assert len(documents) == len(originals)
    http = [doc for doc in documents if (doc.get("spec") or {}).get("task") == "http"]
    assert http, "the examples have http Schedules"
    for document in http:
        url = urlsplit(document["spec"]["params"]["url"])
        assert (url.scheme, url.netloc) == ("http", "127.0.0.1:8123")
        assert url.path in paths
    # Every other task runs locally without a network name.
    assert {doc["spec"]["task"] for doc in documents if doc["kind"] == "Schedule"} <= {
        "http",
        "command",
    }
    # The files themselves keep the in-cluster names a real cluster resolves.
    hosts = {
        str(urlsplit(doc["spec"]["params"]["url"]).hostname)
        for doc in originals
        if (doc.get("spec") or {}).get("task") == "http"
    }
    assert all(host.endswith(".svc") for host in hosts), hosts


@pytest.fixture
def server_url() -> Iterator[str]:
    server = serve(0, ["/fetch"])
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_server_answers_the_known_paths(server_url: str) -> None:
    request = urllib.request.Request(f"{server_url}/fetch", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"ok": True, "method": "POST", "path": "/fetch"}
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{server_url}/elsewhere", timeout=5)
    assert missing.value.code == 404
