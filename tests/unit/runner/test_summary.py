"""The termination-message summary stays one parseable JSON line within the kubelet's 4096 bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cronfleet_runner.summary import (
    MAX_DATA_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_SUMMARY_BYTES,
    Summary,
    failed,
    succeeded,
    write_termination_message,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


def parsed(line: str) -> dict[str, Any]:
    assert line.endswith("\n") and line.count("\n") == 1
    assert len(line.encode("utf-8")) <= MAX_SUMMARY_BYTES
    value: dict[str, Any] = json.loads(line)
    return value


def test_a_small_summary_is_written_as_given() -> None:
    line = succeeded("GET http://x/ returned 200 OK", {"status": 200}).to_line()
    assert line == (
        '{"result":"Succeeded","message":"GET http://x/ returned 200 OK","data":{"status":200}}\n'
    )
    assert failed("boom").to_line() == '{"result":"Failed","message":"boom"}\n'


def test_a_long_message_is_clipped_with_an_ellipsis() -> None:
    summary = parsed(failed("x" * 10_000).to_line())
    assert summary["message"] == "x" * (MAX_MESSAGE_CHARS - 1) + "…"


def test_large_data_is_replaced_by_a_marker_that_says_so() -> None:
    summary = parsed(succeeded("ok", {"rows": list(range(2000))}).to_line())
    assert summary["data"]["truncated"] is True
    assert summary["data"]["jsonBytes"] > MAX_DATA_BYTES
    assert summary["message"] == "ok"


def test_data_that_is_not_json_is_omitted_with_the_reason() -> None:
    summary = parsed(succeeded("ok", {"when": object()}).to_line())
    assert summary["data"]["omitted"].startswith("data is not JSON-serialisable")


@settings(max_examples=40, deadline=None)
@given(
    message=st.text(max_size=1500),
    data=st.none() | st.dictionaries(st.text(max_size=10), json_values, max_size=6),
)
def test_any_summary_is_one_json_line_within_the_limit(
    message: str, data: dict[str, Any] | None
) -> None:
    for summary in (succeeded(message, data), failed(message, data)):
        line = parsed(summary.to_line())
        assert line["result"] == summary.result
        # What is kept of the message is its beginning.
        kept = line["message"].removesuffix("…")
        assert message.startswith(kept)


def test_escapes_and_wide_characters_still_fit() -> None:
    for unit in ("\x00", "\u2028", "😀", '"'):
        parsed(Summary("Failed", unit * 5000, {"k": unit * 300}).to_line())


def test_an_unwritable_path_is_reported_not_raised(tmp_path: Path) -> None:
    problem = write_termination_message(str(tmp_path / "missing" / "log"), failed("x"))
    assert isinstance(problem, FileNotFoundError)
    path = tmp_path / "termination-log"
    assert write_termination_message(str(path), failed("x")) is None
    assert json.loads(path.read_text()) == {"result": "Failed", "message": "x"}
