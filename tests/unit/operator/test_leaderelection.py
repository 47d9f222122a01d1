"""Leader election: the decisions over a Lease as read, the settings, the loop's stand-down."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import generate_latest

from cronfleet.kubeapi import ApiError
from cronfleet.leaderelection import (
    ElectionError,
    ElectionSettings,
    LeaderElector,
    Observation,
    Step,
    decide,
    holder_of,
    lost_leadership,
    needs_leadership,
    observe,
    release,
    settings_from,
)
from cronfleet.metrics import Metrics

ME = "cronfleet-7d9f-abcde_0123456789ab"
OTHER = "cronfleet-7d9f-fghij_ba9876543210"
WALL = datetime(2026, 11, 30, 21, 0, 0, 123456, tzinfo=UTC)
STAMP = "2026-11-30T21:00:00.123456Z"
SETTINGS = ElectionSettings(namespace="cronfleet", identity=ME, lease_name="cronfleet-operator")


def lease(holder: str | None, *, duration: int = 15, transitions: int = 3) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "leaseDurationSeconds": duration,
        "acquireTime": "2026-11-30T20:00:00.000000Z",
        "renewTime": "2026-11-30T20:59:58.000000Z",
        "leaseTransitions": transitions,
    }
    if holder is not None:
        spec["holderIdentity"] = holder
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "cronfleet-operator",
            "namespace": "cronfleet",
            "resourceVersion": "41",
        },
        "spec": spec,
    }


# (case, lease as read, seconds since its record last changed, step, holder written, transitions)
DECISIONS: list[tuple[str, dict[str, Any] | None, float, Step, str | None, int | None]] = [
    ("no Lease yet: create it", None, 0, Step.ACQUIRE, ME, 0),
    ("held by nobody: take it at once", lease(None), 0, Step.ACQUIRE, ME, 4),
    ("released (empty holder): take it at once", lease(""), 0, Step.ACQUIRE, ME, 4),
    ("ours: renew", lease(ME), 14, Step.RENEW, ME, 3),
    ("ours, even past its duration: renew", lease(ME), 99, Step.RENEW, ME, 3),
    ("another's, renewed recently: wait", lease(OTHER), 14.9, Step.WAIT, None, None),
    ("another's, unchanged for the duration: take it", lease(OTHER), 15, Step.ACQUIRE, ME, 4),
    (
        "another's, its own short duration passed",
        lease(OTHER, duration=6),
        6.5,
        Step.ACQUIRE,
        ME,
        4,
    ),
    (
        "another's, its own long duration not passed",
        lease(OTHER, duration=60),
        30,
        Step.WAIT,
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("read", "since", "step", "holder", "transitions"),
    [case[1:] for case in DECISIONS],
    ids=[case[0] for case in DECISIONS],
)
def test_decide(
    read: dict[str, Any] | None,
    since: float,
    step: Step,
    holder: str | None,
    transitions: int | None,
) -> None:
    observed = Observation(record=(), at=1000.0)
    decision = decide(read, ME, SETTINGS, observed, 1000.0 + since, WALL)
    assert decision.step is step
    if step is Step.WAIT:
        assert decision.lease is None
        return
    assert decision.lease is not None
    spec = decision.lease["spec"]
    assert spec["holderIdentity"] == holder
    assert spec["leaseTransitions"] == transitions
    assert spec["renewTime"] == STAMP
    assert spec["leaseDurationSeconds"] == 15
    assert decision.create is (read is None)
    if read is not None:
        # Optimistic concurrency: the write carries the resourceVersion read.
        assert decision.lease["metadata"]["resourceVersion"] == "41"
    if step is Step.RENEW:
        assert spec["acquireTime"] == "2026-11-30T20:00:00.000000Z"
    else:
        assert spec["acquireTime"] == STAMP


def test_a_holder_is_judged_from_when_its_record_last_changed_on_our_clock() -> None:
    first = observe(None, lease(OTHER), now=100.0)
    # The same record read again later: still observed at 100 (not renewed since).
    again = observe(first, lease(OTHER), now=110.0)
    assert again.at == 100.0
    assert decide(lease(OTHER), ME, SETTINGS, again, 116.0, WALL).step is Step.ACQUIRE
    renewed = lease(OTHER)
    renewed["spec"]["renewTime"] = "2026-11-30T21:00:10.000000Z"
    later = observe(again, renewed, now=112.0)
    assert later.at == 112.0
    assert decide(renewed, ME, SETTINGS, later, 116.0, WALL).step is Step.WAIT


def test_release_hands_the_lease_to_nobody_only_when_ours() -> None:
    released = release(lease(ME), ME, WALL)
    assert released is not None
    assert released["spec"]["holderIdentity"] == ""
    assert released["spec"]["leaseDurationSeconds"] == 1
    assert released["spec"]["leaseTransitions"] == 3
    assert released["metadata"]["resourceVersion"] == "41"
    assert release(lease(OTHER), ME, WALL) is None
    assert release(None, ME, WALL) is None
    # A standby takes a released Lease at its next try.
    taken = decide(released, OTHER, SETTINGS, Observation((), 0.0), 0.0, WALL)
    assert taken.step is Step.ACQUIRE


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("GET", "/apis/cronfleet.io/v1alpha1/namespaces/a/schedules/b", False),
        ("PATCH", "/apis/cronfleet.io/v1alpha1/namespaces/a/schedules/b/status", True),
        ("PATCH", "/apis/batch/v1/namespaces/a/cronjobs/b", True),
        ("POST", "/apis/batch/v1/namespaces/a/jobs", True),
        ("POST", "/api/v1/namespaces/a/events", True),
        ("DELETE", "/apis/batch/v1/namespaces/a/jobs/b", True),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/a/leases/cronfleet-operator", False),
        ("POST", "/apis/coordination.k8s.io/v1/namespaces/a/leases", False),
        ("POST", "/apis/authentication.k8s.io/v1/tokenreviews", False),
        ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", False),
        # Not a Lease, even if the name looks like one.
        ("PATCH", "/apis/coordination.k8s.io/v1/namespaces/a/leases/x/y", True),
    ],
)
def test_only_writes_to_what_the_cluster_holds_need_leadership(
    method: str, path: str, needed: bool
) -> None:
    assert needs_leadership(method, path) is needed


def test_lost_leadership_at_the_renew_deadline() -> None:
    assert not lost_leadership(None, 1000.0, 10)
    assert not lost_leadership(100.0, 109.9, 10)
    assert lost_leadership(100.0, 110.0, 10)


def test_settings_default_to_client_go_values_and_an_identity_per_process() -> None:
    env = {"CRONFLEET_LEADER_ELECTION": "true", "POD_NAME": "op-1", "POD_NAMESPACE": "ops"}
    first = settings_from(env)
    second = settings_from(env)
    assert first is not None and second is not None
    assert (first.lease_duration, first.renew_deadline, first.retry_period) == (15, 10, 2)
    assert (first.namespace, first.lease_name) == ("ops", "cronfleet-operator")
    assert first.identity.startswith("op-1_") and second.identity.startswith("op-1_")
    assert first.identity != second.identity
    assert settings_from({"POD_NAME": "op-1"}) is None
    assert settings_from({"CRONFLEET_LEADER_ELECTION": "false"}) is None


def test_flags_override_the_environment() -> None:
    env = {
        "CRONFLEET_LEADER_ELECTION": "false",
        "CRONFLEET_LEADER_ELECTION_LEASE_DURATION": "30",
        "CRONFLEET_LEADER_ELECTION_RETRY_PERIOD": "1s",
        "POD_NAMESPACE": "ops",
    }
    settings = settings_from(env, enable="true", lease_duration="6s", renew_deadline="4")
    assert settings is not None
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (6, 4, 1)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CRONFLEET_LEADER_ELECTION": "maybe"},
            "CRONFLEET_LEADER_ELECTION should be true or false, not 'maybe'",
        ),
        (
            {"CRONFLEET_LEADER_ELECTION": "true", "CRONFLEET_LEADER_ELECTION_RETRY_PERIOD": "2m"},
            "CRONFLEET_LEADER_ELECTION_RETRY_PERIOD should be a positive number of seconds",
        ),
        (
            {"CRONFLEET_LEADER_ELECTION": "true", "CRONFLEET_LEADER_ELECTION_LEASE_DURATION": "0"},
            "CRONFLEET_LEADER_ELECTION_LEASE_DURATION should be a positive number",
        ),
        (
            {"CRONFLEET_LEADER_ELECTION": "true", "CRONFLEET_LEADER_ELECTION_RENEW_DEADLINE": "15"},
            "lease duration (15s) must be longer than its renew deadline (15s)",
        ),
        (
            {"CRONFLEET_LEADER_ELECTION": "true", "CRONFLEET_LEADER_ELECTION_RETRY_PERIOD": "9"},
            "renew deadline (10s) must be longer than 1.2 times its retry period (9s)",
        ),
    ],
)
def test_bad_settings_name_the_setting_and_the_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(ElectionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from({"POD_NAMESPACE": "ops", **env})


# -- the loop, against an in-memory Lease store with resourceVersions ------------------------


class LeaseStore:
    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.fail = False

    def _check(self) -> None:
        if self.fail:
            raise ApiError(503, {"message": "unavailable"}, "PUT", "/leases")

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.lease)

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise ApiError(409, {"reason": "AlreadyExists"}, "POST", "/leases")
        return self._store(body)

    async def replace_lease(
        self, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, {"reason": "Conflict"}, "PUT", "/leases")
        return self._store(body)

    def _store(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(dict(body))
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.lease = stored
        return copy.deepcopy(stored)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def elector(store: LeaseStore, identity: str, clock: Clock, events: list[str]) -> LeaderElector:
    settings = ElectionSettings(
        namespace="ops", identity=identity, lease_duration=6, renew_deadline=4, retry_period=1
    )
    return LeaderElector(
        store,
        settings,
        on_started_leading=lambda: events.append(f"{identity} leads"),
        on_stopped_leading=lambda: events.append(f"{identity} stopped"),
        monotonic=clock,
    )


def test_one_leads_the_other_takes_over_after_the_lease_duration() -> None:
    async def scenario() -> None:
        store, clock = LeaseStore(), Clock()
        events: list[str] = []
        first, second = elector(store, "a", clock, events), elector(store, "b", clock, events)
        await first._try_once()
        await second._try_once()
        assert first.is_leading() and not second.is_leading()
        assert holder_of(store.lease) == "a" and events == ["a leads"]
        # "a" dies (stops renewing); "b" takes over once the record is 6 s old on its clock.
        clock.now = 5.9
        await second._try_once()
        assert not second.is_leading()
        clock.now = 6.0
        await second._try_once()
        assert second.is_leading() and holder_of(store.lease) == "b"
        assert store.lease is not None and store.lease["spec"]["leaseTransitions"] == 1
        # "a" stopped acting at its renew deadline (4 s), before "b" could take over.
        assert not first.is_leading()

    asyncio.run(scenario())


def test_a_leader_that_cannot_renew_stops_at_the_renew_deadline() -> None:
    async def scenario() -> None:
        store, clock = LeaseStore(), Clock()
        events: list[str] = []
        leader = elector(store, "a", clock, events)
        await leader._try_once()
        assert leader.is_leading()
        store.fail = True
        clock.now = 3.9
        await leader._try_once()
        assert leader.is_leading()  # still within the renew deadline
        clock.now = 4.0
        # Judged on the clock: no longer leading, even before the loop notices.
        assert not leader.is_leading()

    asyncio.run(scenario())


def test_a_leader_whose_lease_was_taken_stands_down_at_once() -> None:
    async def scenario() -> None:
        store, clock = LeaseStore(), Clock()
        events: list[str] = []
        leader = elector(store, "a", clock, events)
        await leader._try_once()
        assert store.lease is not None
        store.lease["spec"]["holderIdentity"] = "b"  # written by someone else
        store.version += 1
        store.lease["metadata"]["resourceVersion"] = str(store.version)
        await leader._try_once()  # its renewal conflicts: read again next time
        await leader._try_once()
        assert events == ["a leads", "a stopped"]
        assert not leader.is_leading()

    asyncio.run(scenario())


def test_release_lets_the_standby_take_over_at_once() -> None:
    async def scenario() -> None:
        store, clock = LeaseStore(), Clock()
        events: list[str] = []
        first, second = elector(store, "a", clock, events), elector(store, "b", clock, events)
        await first._try_once()
        await second._try_once()
        await first.release()
        assert not first.is_leading()
        assert store.lease is not None and store.lease["spec"]["holderIdentity"] == ""
        await second._try_once()  # no wait for the lease duration
        assert second.is_leading()

    asyncio.run(scenario())


# -- what a standby exports ------------------------------------------------------------------


def test_only_the_leader_exports_per_schedule_series() -> None:
    leading = [False]
    schedules = [
        {
            "metadata": {"namespace": "ops", "name": "backup", "creationTimestamp": STAMP},
            "spec": {"cron": "0 3 * * *", "task": "command"},
            "status": {"phase": "Active"},
        }
    ]
    metrics = Metrics(lambda: schedules, leading=lambda: leading[0])
    standby = generate_latest(metrics.registry).decode()
    assert "cronfleet_operator_leader 0.0" in standby
    assert 'schedule="backup"' not in standby
    assert "cronfleet_schedules{" not in standby
    leading[0] = True
    leader = generate_latest(metrics.registry).decode()
    assert "cronfleet_operator_leader 1.0" in leader
    assert 'cronfleet_schedule_info{cronjob="",namespace="ops",phase="Active"' in leader
    assert 'cronfleet_schedules{namespace="ops",phase="Active"} 1.0' in leader
