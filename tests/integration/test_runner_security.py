"""What a run reports is safe to show: Secret values masked in status.history and events,
params passed as written (no ``$(VAR)`` expansion), and the http task refusing the cloud
metadata address before connecting. Runs really execute through the local node agent."""

from __future__ import annotations

import base64
from typing import Any

from cronfleet_devcluster.kube import SCHEDULES, SECRETS, Object
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.test_runs import NEVER, finished_runs, run_now
from tests.integration.test_schedules import events_for, schedule, wait_phase

TOKEN = "s3cr3t-db-t0ken-4711"
# A literal in params that the kubelet would expand from the Secret-backed
# variable, and a `$$` it would shorten, were they not escaped.
LITERAL = "literal=$(token) price=$$5"


def create_secret(cluster: Cluster, namespace: str) -> None:
    cluster.kube.create(
        SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
        },
        namespace,
    )


def failed_run(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]) -> Object:
    cluster.kube.create(SCHEDULES, schedule(name, cron=NEVER, **spec), namespace)
    wait_phase(cluster, namespace, name, "Active")
    run_now(cluster, namespace, name, "once")
    run: Object = finished_runs(cluster, namespace, name, 1)[0]
    return run


def event_messages(cluster: Cluster, namespace: str, name: str) -> str:
    return "\n".join(event.get("message") or "" for event in events_for(cluster, namespace, name))


def test_a_secret_key_ref_value_is_masked_in_history_and_events(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    create_secret(cluster, namespace)
    run = failed_run(
        cluster,
        namespace,
        "leaky",
        {
            "task": "command",
            "params": {
                "argv": ["sh", "-c", 'echo "connecting with $TOKEN" >&2; exit 3'],
                "permanentExitCodes": [3],
            },
            "env": [
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "token"}}}
            ],
        },
    )
    assert (run["result"], run["exitCode"]) == ("Failed", 2)
    assert run["message"].endswith("stderr ends with:\nconnecting with ***")
    assert TOKEN not in run["message"]
    events = event_messages(cluster, namespace, "leaky")
    assert "connecting with ***" in events
    assert TOKEN not in events


def test_an_env_from_secret_is_masked_and_params_are_not_expanded(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    create_secret(cluster, namespace)
    script = f"echo \"token=$token region=$REGION\" >&2; echo '{LITERAL}' >&2; exit 3"
    run = failed_run(
        cluster,
        namespace,
        "leaky-env-from",
        {
            "task": "command",
            "params": {"argv": ["sh", "-c", script], "permanentExitCodes": [3]},
            "envFrom": [{"secretRef": {"name": "db"}}],
            "env": [{"name": "REGION", "value": "eu-west-1"}],
        },
    )
    assert run["exitCode"] == 2
    # The Secret's key is masked; a literal env value is not.
    assert "token=*** region=eu-west-1" in run["message"]
    # The runner saw the params as written: `$(token)` was not filled in from
    # the Secret, `$$5` was not shortened.
    assert run["message"].endswith(LITERAL)
    assert TOKEN not in run["message"]
    events = event_messages(cluster, namespace, "leaky-env-from")
    assert "token=***" in events and TOKEN not in events


def test_the_cloud_metadata_address_is_refused_permanently(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    run = failed_run(
        cluster,
        namespace,
        "metadata",
        {
            "task": "http",
            "params": {"url": "http://169.254.169.254/latest/meta-data/"},
            # A safety net should the deny-list ever regress: the request would
            # go to a closed loopback port, never off this machine.
            "env": [
                {"name": "http_proxy", "value": "http://127.0.0.1:9"},
                {"name": "HTTP_PROXY", "value": "http://127.0.0.1:9"},
            ],
            "retry": {"maxRetries": 3, "backoff": {"initialDelaySeconds": 1}},
        },
    )
    assert (run["result"], run["exitCode"]) == ("Failed", 2)
    assert run["message"].startswith(
        "GET http://169.254.169.254/latest/meta-data/ was refused: the host 169.254.169.254 "
        "is 169.254.169.254, which the http deny-list forbids: rule 169.254.169.254/32 "
        "(cloud metadata service"
    )
    assert "no connection was made" in run["message"]
    assert "169.254.169.254/32" in event_messages(cluster, namespace, "metadata")
