"""Create a one-time Schedule from an application: escalate a ticket 48 h after it
was created, unless the ticket is resolved first (then delete the Schedule).

    KUBECONFIG=... python escalate_ticket.py <namespace> <ticket-id>
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from kubernetes import client, config

GROUP, VERSION, PLURAL = "cronfleet.io", "v1alpha1", "schedules"


def schedule_escalation(namespace: str, ticket: str, created: datetime) -> None:
    due = (created + timedelta(hours=48)).astimezone(UTC)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Schedule",
        "metadata": {"name": f"escalate-ticket-{ticket}", "labels": {"ticket": ticket}},
        "spec": {
            "at": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ttlSecondsAfterCompleted": 3600,  # cleans itself up after its run
            "task": "http",
            "params": {"url": f"http://helpdesk.default.svc/tickets/{ticket}/escalate"},
        },
    }
    client.CustomObjectsApi().create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )


def ticket_resolved(namespace: str, ticket: str) -> None:
    client.CustomObjectsApi().delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, f"escalate-ticket-{ticket}"
    )


if __name__ == "__main__":
    config.load_kube_config()  # type: ignore[no-untyped-call]
    schedule_escalation(sys.argv[1], sys.argv[2], datetime.now(UTC))
