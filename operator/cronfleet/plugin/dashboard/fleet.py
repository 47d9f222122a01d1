"""The Schedules table: which Schedules a filter keeps, and the rows and cards it shows."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cronfleet.models import Phase
from cronfleet.plugin import views
from cronfleet.plugin.dashboard.display import percent, relative, stamp

# A Schedule the operator has not written a status for yet.
PENDING = "Pending"
PHASES = (*(phase.value for phase in Phase), PENDING)
SEARCH_LIMIT = 253  # the longest name a Schedule can have


@dataclass(frozen=True)
class FleetFilter:
    namespace: str = ""
    phase: str = ""
    search: str = ""

    def query(self) -> dict[str, str]:
        """The filter as URL query parameters, leaving out the empty ones."""
        pairs = {"namespace": self.namespace, "phase": self.phase, "q": self.search}
        return {key: value for key, value in pairs.items() if value}


def parse_filter(query: Mapping[str, str]) -> FleetFilter:
    """The filter of ``?namespace=&phase=&q=``; ValueError naming the field for bad input."""
    phase = query.get("phase", "").strip()
    if phase and phase not in PHASES:
        raise ValueError(f"phase {phase!r} is not allowed: use one of {', '.join(PHASES)}")
    search = query.get("q", "").strip()
    if len(search) > SEARCH_LIMIT:
        raise ValueError(
            f"q (search) has {len(search)} characters: at most {SEARCH_LIMIT}, a name's limit"
        )
    return FleetFilter(query.get("namespace", "").strip(), phase, search)


def _metadata(schedule: Mapping[str, Any]) -> Mapping[str, Any]:
    return schedule.get("metadata") or {}


def phase_of(schedule: Mapping[str, Any]) -> str:
    return str((schedule.get("status") or {}).get("phase") or PENDING)


def matches(schedule: Mapping[str, Any], wanted: FleetFilter) -> bool:
    metadata = _metadata(schedule)
    if wanted.namespace and metadata.get("namespace") != wanted.namespace:
        return False
    if wanted.phase and phase_of(schedule) != wanted.phase:
        return False
    # Search is by name, as `kubectl get | grep` would be, ignoring case.
    return wanted.search.lower() in str(metadata.get("name") or "").lower()


def select(schedules: Iterable[Mapping[str, Any]], wanted: FleetFilter) -> list[Mapping[str, Any]]:
    kept = [schedule for schedule in schedules if matches(schedule, wanted)]
    return sorted(kept, key=lambda s: (_metadata(s).get("namespace", ""), _metadata(s)["name"]))


def namespaces_key(namespaces: Iterable[str]) -> str:
    """A short fingerprint of a namespace list: tells a page whether its list is current."""
    return hashlib.sha256("\n".join(namespaces).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RowView:
    row: views.ScheduleRow
    success: str
    next_run: str
    next_run_at: str
    last_result: str

    @property
    def href(self) -> str:
        return f"/schedules/{self.row.namespace}/{self.row.name}"


@dataclass(frozen=True)
class FleetView:
    filter: FleetFilter
    rows: list[RowView]
    stats: views.FleetStats
    # Every namespace with a Schedule, so the filter can offer them all.
    namespaces: list[str]
    phases: tuple[str, ...]
    total: int


def row_view(schedule: Mapping[str, Any], now: datetime) -> RowView:
    row = views.schedule_row(schedule)
    return RowView(
        row=row,
        success=percent(row.success_rate),
        next_run=relative(row.next_run, now) if not row.suspended else "— (paused)",
        next_run_at=stamp(row.next_run),
        last_result=row.last_result or "—",
    )


def fleet_view(
    schedules: Iterable[Mapping[str, Any]], wanted: FleetFilter, now: datetime
) -> FleetView:
    everything = list(schedules)
    shown = select(everything, wanted)
    namespaces = sorted({str(_metadata(s).get("namespace") or "") for s in everything})
    return FleetView(
        filter=wanted,
        rows=[row_view(schedule, now) for schedule in shown],
        # The cards describe what the table shows, so a filter narrows both.
        stats=views.fleet_stats(shown, now),
        namespaces=namespaces,
        phases=PHASES,
        total=len(everything),
    )


__all__ = [
    "PHASES",
    "FleetFilter",
    "FleetView",
    "RowView",
    "fleet_view",
    "matches",
    "namespaces_key",
    "parse_filter",
    "phase_of",
    "row_view",
    "select",
]
