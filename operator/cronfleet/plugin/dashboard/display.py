"""How figures and moments read on the dashboard's pages."""

from __future__ import annotations

from datetime import datetime, timedelta


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.0f}%"


def span(delta: timedelta) -> str:
    """A short duration in the largest unit that fits: ``45s``, ``3m``, ``5h 20m``, ``2d 3h``."""
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def relative(moment: datetime | None, now: datetime) -> str:
    """``in 5m`` or ``3h ago``; ``—`` for no moment."""
    if moment is None:
        return "—"
    delta = moment - now
    if delta >= timedelta(0):
        return f"in {span(delta)}"
    return f"{span(delta)} ago"


def stamp(moment: datetime | None) -> str:
    """The moment in its own zone, to the second, with the zone's abbreviation."""
    if moment is None:
        return "—"
    return f"{moment:%Y-%m-%d %H:%M:%S} {moment.tzname() or ''}".rstrip()


__all__ = ["percent", "relative", "span", "stamp"]
