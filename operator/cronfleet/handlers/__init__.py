"""kopf handlers, one module per watched kind; importing this registers them all."""

from cronfleet.handlers import cronjobs, jobs, lifecycle, pods, schedules

__all__ = ["cronjobs", "jobs", "lifecycle", "pods", "schedules"]
