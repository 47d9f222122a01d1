"""The kubelet's exponential back-off, for container restarts and image pulls.

The same rules as client-go's ``flowcontrol.Backoff`` that the kubelet uses
(``pkg/kubelet/kubelet.go``): the first delay is 10 s, each further failure
doubles it up to 300 s, and an entry untouched for twice the maximum (10
minutes) counts as stable again, so the next failure starts over at 10 s.
The kubelet adds no jitter to these two back-offs, and neither does this.
Times are monotonic seconds passed in by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INITIAL_SECONDS = 10.0
MAX_SECONDS = 300.0


@dataclass
class _Entry:
    delay: float
    last_update: float


@dataclass
class Backoff:
    initial: float = INITIAL_SECONDS
    maximum: float = MAX_SECONDS
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def _expired(self, event_time: float, entry: _Entry) -> bool:
        return event_time - entry.last_update > 2 * self.maximum

    def next(self, key: str, event_time: float, now: float) -> None:
        """Record a failure at ``event_time``: start at ``initial`` or double the delay."""
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry):
            self._entries[key] = _Entry(self.initial, now)
            return
        entry.delay = min(entry.delay * 2, self.maximum)
        entry.last_update = now

    def delay(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def in_backoff_since(self, key: str, event_time: float, now: float) -> bool:
        """Container restarts: still waiting, counting from when the container finished."""
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry):
            return False
        return now - event_time < entry.delay

    def in_backoff_since_update(self, key: str, now: float) -> bool:
        """Image pulls: still waiting, counting from the last failed pull."""
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry):
            return False
        return now - entry.last_update < entry.delay


def format_duration(seconds: float) -> str:
    """Go's ``time.Duration`` text for whole seconds, as in the kubelet's messages: 10s, 5m0s."""
    whole = int(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"
