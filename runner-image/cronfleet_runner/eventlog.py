"""Structured logs: one JSON object per line on stdout, one line per event.

Every line carries the run metadata (task, schedule, run, trigger, attempt,
scheduled time), so a line found alone in a log store still says which run
it belongs to. Secret values are masked in every field (see
cronfleet_runner.masking) before the field is clipped, so that a clip cannot
leave half a secret behind unrecognised.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal, TextIO

from cronfleet_runner.contract import RunMetadata
from cronfleet_runner.masking import Masker

Level = Literal["debug", "info", "warning", "error"]

# One log line is capped so that a runaway field (a huge output line, a long
# traceback) cannot flood a log pipeline; fields are clipped, never dropped.
MAX_FIELD_CHARS = 8192


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clipped(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
        return value[: MAX_FIELD_CHARS - 1] + "…"
    return value


class EventLog:
    """Writes events as JSON lines; safe to use from the task's threads."""

    def __init__(
        self,
        stream: TextIO,
        metadata: RunMetadata,
        clock: Callable[[], str] = utc_timestamp,
        masker: Masker | None = None,
    ) -> None:
        self._stream = stream
        self._masker = masker or Masker()
        self._metadata = self._masker.value(metadata.log_fields())
        self._clock = clock
        self._lock = threading.Lock()

    def emit(self, event: str, level: Level = "info", **fields: object) -> None:
        record: dict[str, object] = {"ts": self._clock(), "level": level, "event": event}
        record.update(self._metadata)
        for key, value in fields.items():
            record[key] = _clipped(self._masker.value(value))
        line = json.dumps(record, ensure_ascii=False, default=str, separators=(",", ":"))
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                # A closed or broken stdout must not turn a run's result into a crash.
                pass

    def info(self, event: str, **fields: object) -> None:
        self.emit(event, "info", **fields)

    def warning(self, event: str, **fields: object) -> None:
        self.emit(event, "warning", **fields)

    def error(self, event: str, **fields: object) -> None:
        self.emit(event, "error", **fields)
