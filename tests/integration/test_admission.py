"""The chart's admission policy: a Schedule grants no more than its author already has.

Real users (ServiceAccount tokens, authorized by RBAC) write Schedules through
the API server, which asks its authorizer whether each of them may create the
Jobs a Schedule would make the operator create.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from cronfleet_devcluster.kube import SCHEDULES, ApiError, Kube, Object, Resource
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster
from tests.integration.test_chart import (  # noqa: F401  (helm is a fixture)
    ROLEBINDINGS,
    ensure_namespace,
    helm,
    render,
    user_token,
)
from tests.integration.test_schedules import schedule

ROLES = Resource("rbac.authorization.k8s.io/v1", "roles")
RELEASE_NAMESPACE = "cronfleet-system"


def bind(cluster: Cluster, team: str, user: str, kind: str, role: str) -> None:
    cluster.kube.create(
        ROLEBINDINGS,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{user}-{role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": user, "namespace": team}],
        },
        team,
    )


def role(cluster: Cluster, team: str, name: str, resources: dict[str, list[str]]) -> None:
    rules = [
        {"apiGroups": [group], "resources": names, "verbs": ["create"]}
        for group, names in resources.items()
    ]
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name},
    }
    cluster.kube.create(ROLES, {**body, "rules": rules}, team)


def refusal(write: Any) -> str:
    with pytest.raises(ApiError) as refused:
        write()
    assert refused.value.status in (403, 422), refused.value
    return str(refused.value.message)


@pytest.fixture
def policy(
    helm: Any,  # noqa: F811
    cluster: Cluster,
    crd: None,
    namespace: str,
) -> Iterator[str]:
    """The chart's policy, as a release in cronfleet-system would install it."""
    documents = render(
        helm,
        "--show-only",
        "templates/admissionpolicy.yaml",
        "--set",
        "admissionPolicy.requirePodCreate=true",
        "--set",
        "admissionPolicy.allowedServiceAccounts={reporter}",
        "--set",
        "admissionPolicy.deniedTasks={command,python}",
    )
    # The roles people are bound to, as the chart installs them.
    roles = [
        document
        for document in render(helm, "--show-only", "templates/rbac.yaml")
        if document["metadata"]["name"] in ("cronfleet-edit", "cronfleet-view")
    ]
    manifests = yaml.safe_dump_all(documents + roles)
    ensure_namespace(cluster, RELEASE_NAMESPACE)
    cluster.kubectl("apply", "-f", "-", input=manifests)
    try:
        yield namespace
    finally:
        # Cluster-wide: it must not outlive the test (it turns off `command`).
        cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input=manifests)


def test_only_users_who_may_create_jobs_and_pods_write_schedules(
    cluster: Cluster, policy: str
) -> None:
    team = policy
    # alice has only cronfleet-edit: she may write Schedules by RBAC, but not
    # create the Jobs they would run, so the policy refuses her.
    alice = Kube(cluster.kube.credentials).with_token(user_token(cluster, team, "alice"))
    bind(cluster, team, "alice", "ClusterRole", "cronfleet-edit")
    # carol may create Jobs, but this cluster also requires pods.
    carol = Kube(cluster.kube.credentials).with_token(user_token(cluster, team, "carol"))
    bind(cluster, team, "carol", "ClusterRole", "cronfleet-edit")
    role(cluster, team, "jobs", {"batch": ["jobs"]})
    bind(cluster, team, "carol", "Role", "jobs")
    # bob may create both: the policy lets him do what he could do directly.
    bob = Kube(cluster.kube.credentials).with_token(user_token(cluster, team, "bob"))
    bind(cluster, team, "bob", "ClusterRole", "cronfleet-edit")
    role(cluster, team, "jobs-and-pods", {"batch": ["jobs"], "": ["pods"]})
    bind(cluster, team, "bob", "Role", "jobs-and-pods")

    def alice_refused() -> str | None:
        try:
            alice.create(SCHEDULES, schedule("by-alice"), team)
        except ApiError as error:
            return error.message if "ValidatingAdmissionPolicy" in error.message else None
        alice.delete(SCHEDULES, "by-alice", team)  # the policy is not in force yet
        return None

    message = eventually(alice_refused, timeout=30, interval=0.5, what="the policy in force")
    print(message)
    assert f"system:serviceaccount:{team}:alice may not create jobs in namespace {team}" in message
    assert "cronfleet-edit alone does not grant it" in message

    message = refusal(lambda: carol.create(SCHEDULES, schedule("by-carol"), team))
    assert "may not create pods" in message and "requirePodCreate" in message

    bob.create(SCHEDULES, schedule("by-bob"), team)
    bob.patch(SCHEDULES, "by-bob", {"spec": {"cron": "0 3 * * *"}}, team)
    # alice may not change what runs, nor ask for a run, of bob's Schedule...
    message = refusal(
        lambda: alice.patch(SCHEDULES, "by-bob", {"spec": {"cron": "* * * * *"}}, team)
    )
    assert "may not create jobs" in message
    run_now = {"metadata": {"annotations": {"cronfleet.io/run-now": "1"}}}
    assert "may not create jobs" in refusal(lambda: alice.patch(SCHEDULES, "by-bob", run_now, team))
    # ...but what RBAC lets her do that starts nothing is hers to do.
    alice.patch(SCHEDULES, "by-bob", {"metadata": {"labels": {"team": "vap"}}}, team)
    alice.delete(SCHEDULES, "by-bob", team)


def test_service_accounts_tasks_and_the_operators_namespace_are_guarded(
    cluster: Cluster, policy: str
) -> None:
    team = policy
    admin = cluster.kube  # even a cluster admin: these are cluster settings

    def refused_as_admin(body: Object, namespace: str = team) -> str:
        return refusal(lambda: admin.create(SCHEDULES, body, namespace))

    shell = schedule("shell")
    shell["spec"] = {**shell["spec"], "task": "command", "params": {"argv": ["true"]}}

    def shell_refused() -> str | None:
        try:
            admin.create(SCHEDULES, shell, team)
        except ApiError as error:
            return error.message if "ValidatingAdmissionPolicy" in error.message else None
        admin.delete(SCHEDULES, "shell", team)  # the policy is not in force yet
        return None

    message = eventually(shell_refused, timeout=30, interval=0.5, what="the policy in force")
    assert "spec.task command is turned off" in message
    python = schedule("py")
    python["spec"] = {**python["spec"], "task": "python", "params": {"callable": "os:getcwd"}}
    message = refused_as_admin(python)
    assert "spec.task python is turned off" in message and "deniedTasks" in message

    other = schedule("as-other")
    other["spec"] = {**other["spec"], "serviceAccountName": "deployer"}
    message = refused_as_admin(other)
    assert "spec.serviceAccountName deployer is not allowed" in message and "reporter" in message
    allowed = schedule("as-reporter")
    allowed["spec"] = {**allowed["spec"], "serviceAccountName": "reporter"}
    admin.create(SCHEDULES, allowed, team)

    message = refused_as_admin(schedule("inside"), RELEASE_NAMESPACE)
    assert f"not allowed in the operator's own namespace ({RELEASE_NAMESPACE})" in message
    deputy = schedule("deputy")
    deputy["spec"] = {**deputy["spec"], "serviceAccountName": "cf-cronfleet"}
    assert "operator's own ServiceAccount" in refused_as_admin(deputy)
