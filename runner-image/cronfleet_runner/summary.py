"""The one-line JSON summary a run leaves in its termination-message file.

The kubelet keeps at most 4096 bytes of a termination message and cuts the
rest without regard for JSON, so the summary is bounded here on purpose: the
message is clipped, oversized ``data`` is replaced by a marker, and the
encoded line always parses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cronfleet_runner.contract import RESULT_FAILED, RESULT_SUCCEEDED

MAX_SUMMARY_BYTES = 4096
MAX_MESSAGE_CHARS = 1024
MAX_DATA_BYTES = 2048
ELLIPSIS = "…"

Result = Literal["Succeeded", "Failed"]


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def bounded_data(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``data`` itself when it is JSON and small, otherwise a marker that says why not."""
    if data is None:
        return None
    try:
        encoded = _dumps(dict(data))
    except (TypeError, ValueError) as error:
        return {"omitted": f"data is not JSON-serialisable: {clip(str(error), 200)}"}
    size = len(encoded.encode("utf-8"))
    if size > MAX_DATA_BYTES:
        return {"truncated": True, "jsonBytes": size, "maxBytes": MAX_DATA_BYTES}
    parsed: dict[str, Any] = json.loads(encoded)
    return parsed


@dataclass(frozen=True)
class Summary:
    result: Result
    message: str
    data: Mapping[str, Any] | None = None

    @property
    def succeeded(self) -> bool:
        return self.result == RESULT_SUCCEEDED

    def to_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"result": self.result, "message": self.message}
        if self.data is not None:
            summary["data"] = dict(self.data)
        return summary

    def to_line(self) -> str:
        """The summary as one JSON line (newline included) of at most 4096 UTF-8 bytes."""
        message = clip(self.message, MAX_MESSAGE_CHARS)
        data = bounded_data(self.data)
        while True:
            body: dict[str, Any] = {"result": self.result, "message": message}
            if data is not None:
                body["data"] = data
            line = _dumps(body) + "\n"
            overflow = len(line.encode("utf-8")) - MAX_SUMMARY_BYTES
            if overflow <= 0:
                return line
            # Escapes and multi-byte characters make bytes outnumber characters;
            # cutting the overflow in characters (at least) converges quickly.
            message = clip(message, max(len(message) - overflow - 1, 1))
            if len(message) <= 1 and data is not None:
                data = {"truncated": True}


def succeeded(message: str, data: Mapping[str, Any] | None = None) -> Summary:
    return Summary(RESULT_SUCCEEDED, message, data)


def failed(message: str, data: Mapping[str, Any] | None = None) -> Summary:
    return Summary(RESULT_FAILED, message, data)


def write_termination_message(path: str, summary: Summary) -> OSError | None:
    """Write the summary; return the error instead of raising, since the exit code still counts."""
    try:
        with open(path, "w", encoding="utf-8") as sink:
            sink.write(summary.to_line())
    except OSError as error:
        return error
    return None
