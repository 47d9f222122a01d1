"""cronfleet: a Kubernetes operator that runs Schedule resources as native CronJobs."""

__version__ = "0.1.0"
