"""kopf handlers, one module per watched kind; importing this registers them all."""

from cronfleet.handlers import cronjobs, lifecycle, schedules

__all__ = ["cronjobs", "lifecycle", "schedules"]
