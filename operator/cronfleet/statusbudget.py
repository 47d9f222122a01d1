"""A byte budget that keeps a Schedule's status well below etcd's object limit.

The API server refuses a request over 3 MiB and etcd a value over 1.5 MiB; a
Schedule also carries its spec and managedFields. Every list in status is
bounded in entries, but run messages are up to 1 KiB of characters each, and
a character the JSON encoder escapes (control characters) costs six bytes. So
the last step of a status decision fits it into :data:`STATUS_BUDGET_BYTES`:
first the oldest finished runs' messages are cut, then the oldest finished runs
go. Running runs and the counts are never touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

STATUS_BUDGET_BYTES = 512 * 1024
# A run's message once the budget cut it: enough to recognise it.
TRIMMED_MESSAGE_CHARS = 64
TRIMMED_MARK = " [cut: status size budget]"
# Annotation tokens (run-now, reset, backfill) are kept in status as given up
# to this length; a longer one is kept as its head and digest, which still
# tells one token from another. The API server allows 256 KiB of annotations.
MAX_TOKEN_CHARS = 256
_TOKEN_HEAD_CHARS = 64


def bounded_token(value: str) -> str:
    """The token as status keeps it: itself, or its head and SHA-256 when long."""
    if len(value) <= MAX_TOKEN_CHARS:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()
    return f"{value[:_TOKEN_HEAD_CHARS]}...sha256:{digest}"


def bounded_tokens(annotations: Mapping[str, str], keys: Iterable[str]) -> dict[str, str]:
    """The annotations, with the values of the token annotations ``keys`` bounded."""
    bounded = dict(annotations)
    for key in keys:
        value = bounded.get(key)
        if isinstance(value, str):
            bounded[key] = bounded_token(value)
    return bounded


def encoded_size(value: Any) -> int:
    """An upper bound of the bytes ``value`` takes in the API server's JSON.

    ASCII-escaped, so that a non-ASCII character counts as its escape (never
    less than its UTF-8 bytes); Go's encoder also escapes <, > and &.
    """
    text = json.dumps(value, separators=(",", ":"))
    return len(text) + 5 * sum(text.count(char) for char in "<>&")


def fit_status(
    new: Mapping[str, Any], stored: Mapping[str, Any], budget: int = STATUS_BUDGET_BYTES
) -> dict[str, Any]:
    """``new`` (the status fields being written over ``stored``) cut to fit ``budget``.

    Only ``history`` is cut: the oldest finished runs' messages first, then the
    oldest finished runs themselves. Returns ``new`` unchanged when it fits.
    """
    fitted = dict(new)
    history = fitted.get("history")
    size = encoded_size({**stored, **fitted})
    if size <= budget or not isinstance(history, list):
        return fitted
    runs: list[Any] = list(history)
    # Oldest first: history is newest first. A run without a result still runs.
    finished = [i for i in reversed(range(len(runs))) if _finished(runs[i])]
    for index in finished:
        if size <= budget:
            break
        run = runs[index]
        message = str(run.get("message") or "")
        if len(message) <= TRIMMED_MESSAGE_CHARS:
            continue
        cut = {**run, "message": message[:TRIMMED_MESSAGE_CHARS] + TRIMMED_MARK}
        size -= encoded_size(run) - encoded_size(cut)
        runs[index] = cut
    dropped: set[int] = set()
    for index in finished:
        if size <= budget:
            break
        # The entry and the comma before or after it.
        size -= encoded_size(runs[index]) + 1
        dropped.add(index)
    fitted["history"] = [run for i, run in enumerate(runs) if i not in dropped]
    return fitted


def _finished(run: Any) -> bool:
    return isinstance(run, Mapping) and bool(run.get("result"))
