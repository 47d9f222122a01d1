"""Bad input: rejected by the API server where it can, otherwise phase Invalid with a
message naming the field, a Warning event, the last valid CronJob kept, and every
other Schedule still handled."""

from __future__ import annotations

from typing import Any

import pytest

from cronfleet_devcluster.kube import CRONJOBS, SCHEDULES, SERVICEACCOUNTS, ApiError
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_schedules import events_for, schedule, status_of, wait_phase


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"cron": "every day at two"}, "spec.cron"),
        ({"params": "url=http://x"}, 'spec.params: Invalid value: "string"'),
        (
            {"concurrencyPolicy": "Sometimes"},
            'spec.concurrencyPolicy: Unsupported value: "Sometimes"',
        ),
        ({"timeoutSeconds": 0}, "spec.timeoutSeconds: Invalid value: 0"),
        ({"task": "Sync Task!"}, "spec.task"),
        ({"retry": {"maxRetries": -1}}, "spec.retry.maxRetries"),
        (
            {"retry": {"backoff": {"initialDelaySeconds": 900, "maxDelaySeconds": 60}}},
            "retry.backoff.maxDelaySeconds must be at least initialDelaySeconds",
        ),
        (
            {
                "env": [
                    {
                        "name": "A",
                        "value": "x",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                    }
                ]
            },
            "either value or valueFrom",
        ),
        ({"history": {"keep": 1000}}, "spec.history.keep"),
        # Cron and zone checks generated from the operator's own parser (CEL).
        ({"cron": "61 * * * *"}, "minute field '61' is not valid"),
        ({"cron": "0 2 * * 7"}, "day-of-week field '7' is not valid"),
        ({"timeZone": "Mars/Olympus_Mons"}, "timeZone must be an IANA time zone"),
        ({"startingDeadlineSeconds": 0}, "a shorter deadline may never start a run"),
        (
            {"envFrom": [{"prefix": "CRONFLEET_", "secretRef": {"name": "db"}}]},
            "envFrom[].prefix may not start with CRONFLEET_",
        ),
        ({"env": [{"name": f"V{i}", "value": "x"} for i in range(101)]}, "spec.env"),
        ({"tolerations": [{"operator": "Exists"}] * 51}, "spec.tolerations"),
    ],
)
def test_apply_time_rejections_name_the_field(
    cluster: Cluster, namespace: str, crd: None, spec: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ApiError) as rejected:
        cluster.kube.create(SCHEDULES, schedule("bad", **spec), namespace)
    assert rejected.value.status == 422
    assert expected in rejected.value.message


def assert_invalid(cluster: Cluster, namespace: str, name: str, *fragments: str) -> None:
    status = wait_phase(cluster, namespace, name, "Invalid")
    for fragment in fragments:
        assert fragment in status["message"], status["message"]
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    events = eventually(
        lambda: [e for e in events_for(cluster, namespace, name) if e["reason"] == "InvalidSpec"],
        timeout=15,
    )
    assert events[0]["type"] == "Warning"
    assert fragments[0] in events[0]["message"]


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        # A valid cron that never fires: the CronJob would accept it and never run.
        ({"cron": "0 0 31 2 *"}, ("spec.cron: '0 0 31 2 *'", "never fires")),
        ({"task": "no-such-task"}, ("spec.task: 'no-such-task'", "the runner's tasks are")),
        ({"params": {"url": "not a url"}}, ("spec.params", "params.url", "valid URL")),
        ({"params": {"url": "http://x", "verb": "GET"}}, ("spec.params", "params.verb")),
        ({"params": {"blob": "x" * 40000}}, ("spec.params", "at most 32768 bytes")),
        ({"env": [{"name": "CRONFLEET_TASK", "value": "x"}]}, ("spec.env[0].name",)),
        ({"resources": {"limits": {"cpu": "lots"}}}, ("spec.resources.limits.cpu: 'lots'",)),
        # Caught only by the API server when the CronJob is written:
        (
            {"nodeSelector": {"bad key!": "x"}},
            ("the CronJob for this spec was rejected", "nodeSelector"),
        ),
    ],
)
def test_operator_marks_invalid_specs(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    spec: dict[str, Any],
    fragments: tuple[str, ...],
) -> None:
    cluster.kube.create(SCHEDULES, schedule("bad", **spec), namespace)
    assert_invalid(cluster, namespace, "bad", *fragments)
    assert cluster.kube.get_or_none(CRONJOBS, "bad", namespace) is None
    # The operator keeps handling every other Schedule.
    cluster.kube.create(SCHEDULES, schedule("good"), namespace)
    wait_phase(cluster, namespace, "good", "Active")


def test_missing_service_account_is_invalid_until_it_exists(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kube.create(SCHEDULES, schedule("sa", serviceAccountName="syncer"), namespace)
    assert_invalid(cluster, namespace, "sa", "spec.serviceAccountName: 'syncer'")
    cluster.kube.create(
        SERVICEACCOUNTS,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "syncer"}},
        namespace,
    )
    wait_phase(cluster, namespace, "sa", "Active")
    pod = cluster.kube.get(CRONJOBS, "sa", namespace)["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == "syncer"


def test_invalid_update_keeps_the_last_valid_cronjob(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kube.create(SCHEDULES, schedule("keep", cron="0 2 * * *"), namespace)
    active = wait_phase(cluster, namespace, "keep", "Active")
    cluster.kube.patch(
        SCHEDULES, "keep", {"spec": {"cron": "0 3 * * *", "task": "no-such-task"}}, namespace
    )
    invalid = wait_phase(cluster, namespace, "keep", "Invalid", generation=2)
    assert "spec.task: 'no-such-task'" in invalid["message"]
    cronjob = cluster.kube.get(CRONJOBS, "keep", namespace)
    assert cronjob["spec"]["schedule"] == "0 2 * * *"
    # The status still tells when the CronJob in place will fire.
    assert invalid["nextRunTime"] == active["nextRunTime"]
    cluster.kube.patch(
        SCHEDULES, "keep", {"spec": {"cron": "0 4 * * *", "task": "http"}}, namespace
    )
    wait_phase(cluster, namespace, "keep", "Active", generation=3)
    assert cluster.kube.get(CRONJOBS, "keep", namespace)["spec"]["schedule"] == "0 4 * * *"
    assert status_of(cluster, namespace, "keep")["message"] == ""
