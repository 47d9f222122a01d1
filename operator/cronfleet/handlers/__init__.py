"""kopf handlers: the operator's start-up, login, probes and shutdown.

What the operator caches comes through its own informers
(``cronfleet.informers``), started with the controller, not through kopf's
per-object watch handlers.
"""

from cronfleet import liveness
from cronfleet.handlers import lifecycle

__all__ = ["lifecycle", "liveness"]
