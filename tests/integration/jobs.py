"""What the integration tests look for in Jobs."""

from __future__ import annotations

from cronfleet_devcluster.kube import JOBS, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster


def job_condition(job: Object, kind: str) -> Object | None:
    """The Job's condition of this type when it is True."""
    conditions: list[Object] = job.get("status", {}).get("conditions") or []
    for condition in conditions:
        if condition["type"] == kind and condition["status"] == "True":
            return condition
    return None


def completed_job(cluster: Cluster, namespace: str, timeout: float = 90) -> Object:
    """Wait for any Job in the namespace to complete, and return it."""

    def probe() -> Object | None:
        for job in cluster.kube.items(JOBS, namespace):
            if job_condition(job, "Complete"):
                found: Object = job
                return found
        return None

    return eventually(probe, timeout=timeout, interval=1, what="a completed Job")
