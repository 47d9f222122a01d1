"""The informers' pure parts: reading watch lines, queries, and what a fresh listing drops."""

from __future__ import annotations

import pytest

from cronfleet.informers import (
    PAGE_SIZE,
    RETRY_MAX_SECONDS,
    RETRY_MIN_SECONDS,
    WATCH_SECONDS,
    Watched,
    list_query,
    retry_delay,
    split_lines,
    start_informers,
    vanished,
    watch_query,
)
from cronfleet.kubeapi import loads
from cronfleet.main import allow_deep_objects


def body(namespace: str, name: str) -> dict[str, object]:
    return {"metadata": {"namespace": namespace, "name": name}}


def test_complete_lines_are_taken_and_a_partial_one_waits_for_the_rest() -> None:
    buffer = bytearray(b'{"type":"ADDED"}\n{"type":"MOD')
    assert split_lines(buffer) == [b'{"type":"ADDED"}']
    assert bytes(buffer) == b'{"type":"MOD'
    assert split_lines(buffer) == []
    buffer += b'IFIED"}\n\n{"type":"DELETED"}\n'
    assert split_lines(buffer) == [b'{"type":"MODIFIED"}', b'{"type":"DELETED"}']
    assert buffer == bytearray()


def test_a_line_longer_than_any_read_chunk_is_kept_whole() -> None:
    # An object may be up to 1.5 MiB: longer than a read, longer than aiohttp's line limit.
    huge = b'{"object":"' + b"x" * (3 << 20) + b'"}'
    buffer = bytearray(huge[: 1 << 20])
    assert split_lines(buffer) == []
    buffer += huge[1 << 20 :] + b"\n"
    assert split_lines(buffer) == [huge]


def test_a_fresh_listing_reports_what_it_no_longer_holds_in_its_namespace_only() -> None:
    cached = [body("a", "kept"), body("a", "deleted-meanwhile"), body("b", "other-namespace")]
    listed = {("a", "kept")}
    assert vanished(listed, cached, "a") == [body("a", "deleted-meanwhile")]
    # A cluster-wide listing holds every namespace: b's object went too.
    assert vanished(listed, cached, None) == [
        body("a", "deleted-meanwhile"),
        body("b", "other-namespace"),
    ]
    assert vanished({("a", "kept"), ("a", "deleted-meanwhile")}, cached, "a") == []


def test_listing_is_paged_and_filtered_by_the_label_selector() -> None:
    assert list_query("", None) == {"limit": str(PAGE_SIZE)}
    assert list_query("app.kubernetes.io/managed-by=cronfleet", "token") == {
        "limit": str(PAGE_SIZE),
        "labelSelector": "app.kubernetes.io/managed-by=cronfleet",
        "continue": "token",
    }


def test_a_watch_resumes_from_a_version_with_bookmarks_and_a_server_timeout() -> None:
    assert watch_query("", "42") == {
        "watch": "true",
        "allowWatchBookmarks": "true",
        "resourceVersion": "42",
        "timeoutSeconds": str(WATCH_SECONDS),
    }
    assert watch_query("a=b", "7")["labelSelector"] == "a=b"


@pytest.mark.parametrize("failures", [1, 2, 3, 5, 10, 100])
def test_retries_back_off_doubling_within_bounds(failures: int) -> None:
    ceiling = min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * 2 ** (failures - 1))
    for _ in range(50):
        delay = retry_delay(failures)
        assert ceiling / 2 <= delay <= ceiling


def test_one_informer_per_kind_and_namespace_or_one_per_kind_for_all() -> None:
    kinds = [
        Watched("/api/v1", "pods", lambda _type, _body: None, list),
        Watched("/apis/batch/v1", "jobs", lambda _type, _body: None, list, "a=b"),
    ]
    everywhere = start_informers(None, kinds, [])  # type: ignore[arg-type]
    assert [(i.watched.plural, i.namespace) for i in everywhere] == [
        ("pods", None),
        ("jobs", None),
    ]
    assert [i.watched.path(i.namespace) for i in everywhere] == [
        "/api/v1/pods",
        "/apis/batch/v1/jobs",
    ]
    scoped = start_informers(None, kinds, ["ops", "web"])  # type: ignore[arg-type]
    assert [i.watched.path(i.namespace) for i in scoped] == [
        "/api/v1/namespaces/ops/pods",
        "/api/v1/namespaces/web/pods",
        "/apis/batch/v1/namespaces/ops/jobs",
        "/apis/batch/v1/namespaces/web/jobs",
    ]


def test_decoding_falls_back_to_json_for_what_orjson_refuses() -> None:
    assert loads(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    # Deeper than orjson's 1,024 levels: the API server stores up to 10,000, and
    # the operator lets the json module decode them.
    allow_deep_objects()
    deep = "[" * 3000 + "]" * 3000
    value = loads(deep)
    for _ in range(2999):
        value = value[0]
    assert value == []
    with pytest.raises(ValueError):
        loads(b"not json")
