"""kopf handlers, one module per watched kind; importing this registers them all."""

from cronfleet import liveness
from cronfleet.handlers import cronjobs, jobs, lifecycle, pods, schedules, serviceaccounts

__all__ = ["cronjobs", "jobs", "lifecycle", "liveness", "pods", "schedules", "serviceaccounts"]
