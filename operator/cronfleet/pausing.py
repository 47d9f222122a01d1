"""Whether a Schedule is suspended, and why: ``spec.suspend`` or the pause annotation.

``spec.suspend`` belongs to whoever owns the spec (often a Git repository).
``cronfleet.io/pause: "<reason>"`` lets a person pause a Schedule without
touching the spec, so a GitOps tool sees no drift. Both mean the same to the
operator: phase Paused, the CronJob suspended, no manual runs, retries held.
Every place that honours suspension asks ``suspension`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PAUSE_ANNOTATION = "cronfleet.io/pause"
# The reason is copied into the status message, manualRuns and events; an
# annotation may hold 256 KiB, the status keeps a sentence.
MAX_REASON_CHARS = 256


@dataclass(frozen=True)
class Suspension:
    """Why runs are held: the field or annotation that says so, and its reason."""

    source: str
    reason: str = ""

    @property
    def by_annotation(self) -> bool:
        return self.source == PAUSE_ANNOTATION

    def describe(self) -> str:
        """The phrase messages and events use: ``paused (cronfleet.io/pause: <reason>)``."""
        if self.by_annotation:
            return f"paused ({PAUSE_ANNOTATION}: {self.reason or 'no reason given'})"
        return "suspended (spec.suspend)"


def suspension(suspend: bool, annotations: Mapping[str, str] | None) -> Suspension | None:
    """The Schedule's suspension, if any; the annotation's presence pauses, whatever its value."""
    if suspend:
        return Suspension("spec.suspend")
    if annotations is not None and PAUSE_ANNOTATION in annotations:
        reason = " ".join((annotations[PAUSE_ANNOTATION] or "").split())
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        return Suspension(PAUSE_ANNOTATION, reason)
    return None


def suspension_of(schedule: Mapping[str, Any]) -> Suspension | None:
    """``suspension`` of a Schedule object as the API returns it."""
    spec = schedule.get("spec") or {}
    annotations = (schedule.get("metadata") or {}).get("annotations") or {}
    return suspension(spec.get("suspend") is True, annotations)


__all__ = ["PAUSE_ANNOTATION", "Suspension", "suspension", "suspension_of"]
