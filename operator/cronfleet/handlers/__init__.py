"""kopf handlers, one module per watched kind; importing this registers them all.

The watch handlers are coroutines on purpose: kopf runs a plain function in a
thread pool, where it would change the controller's caches and wake its
asyncio work queue from another thread while the workers read them. As
coroutines they run on the event loop, one at a time with everything else.
"""

from cronfleet import liveness
from cronfleet.handlers import cronjobs, jobs, lifecycle, pods, schedules, serviceaccounts

__all__ = ["cronjobs", "jobs", "lifecycle", "liveness", "pods", "schedules", "serviceaccounts"]
