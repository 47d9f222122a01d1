"""One acting replica among several: leader election over a ``coordination.k8s.io/v1`` Lease.

The conventions are client-go's ``leaderelection`` package: a candidate takes
the Lease when nobody holds it or when its holder has not renewed it for the
lease duration (measured on the candidate's own clock, from the moment it saw
the record change, so clocks need not agree); the leader renews every retry
period and stops acting as soon as it has not renewed for the renew deadline,
which is shorter than the lease duration, so it has stopped before anyone may
take over. Every write is conditional on the resourceVersion that was read.

kopf's own peering would do the same job, but its standby waits far longer
before taking over; this election is wrapped around the controller's workers
only, while the watches run on every replica so a standby's caches are warm.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import re
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from cronfleet.kubeapi import ApiError

log = logging.getLogger("cronfleet.leaderelection")

Body = dict[str, Any]

LEASE_API_VERSION = "coordination.k8s.io/v1"
DEFAULT_LEASE_NAME = "cronfleet-operator"
DEFAULT_LEASE_DURATION = 15.0
DEFAULT_RENEW_DEADLINE = 10.0
DEFAULT_RETRY_PERIOD = 2.0
# client-go's JitterFactor: a standby waits up to 20% longer between tries, and
# the renew deadline must leave room for that much jitter over the retry period.
JITTER_FACTOR = 1.2
# A released Lease says it lasts one second, as client-go's ReleaseOnCancel writes it.
RELEASED_DURATION_SECONDS = 1

# Requests that store nothing, or that are the election's own: they need no leadership.
_UNGATED_PATHS = (
    re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/[^/]+/leases(/[^/]+)?$"),
    re.compile(r"^/apis/authentication\.k8s\.io/v1/tokenreviews$"),
    re.compile(r"^/apis/authorization\.k8s\.io/v1/subjectaccessreviews$"),
)
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ElectionError(ValueError):
    """A leader-election setting that cannot be used."""


@dataclass(frozen=True)
class ElectionSettings:
    namespace: str
    identity: str
    lease_name: str = DEFAULT_LEASE_NAME
    lease_duration: float = DEFAULT_LEASE_DURATION
    renew_deadline: float = DEFAULT_RENEW_DEADLINE
    retry_period: float = DEFAULT_RETRY_PERIOD

    def __post_init__(self) -> None:
        for name, value in (
            ("lease duration", self.lease_duration),
            ("renew deadline", self.renew_deadline),
            ("retry period", self.retry_period),
        ):
            if value <= 0:
                raise ElectionError(f"the leader election's {name} must be positive, not {value}")
        if self.lease_duration <= self.renew_deadline:
            raise ElectionError(
                f"the leader election's lease duration ({self.lease_duration:g}s) must be "
                f"longer than its renew deadline ({self.renew_deadline:g}s): a leader must "
                "stop acting before a standby may take over"
            )
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ElectionError(
                f"the leader election's renew deadline ({self.renew_deadline:g}s) must be "
                f"longer than {JITTER_FACTOR:g} times its retry period ({self.retry_period:g}s)"
            )
        if not self.namespace or not self.lease_name or not self.identity:
            raise ElectionError(
                "the leader election needs a namespace, a Lease name and an identity "
                f"(got {self.namespace!r}, {self.lease_name!r}, {self.identity!r})"
            )


def seconds(text: str, field: str) -> float:
    """A duration setting: seconds, bare or with an ``s`` (``15``, ``15s``, ``1.5s``)."""
    value = text.strip().removesuffix("s")
    try:
        parsed = float(value)
    except ValueError:
        parsed = float("nan")
    if not parsed > 0 or parsed == float("inf"):
        raise ElectionError(
            f"{field} should be a positive number of seconds such as 15 or 15s, not {text!r}"
        )
    return parsed


def enabled(text: str, field: str) -> bool:
    value = text.strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ElectionError(f"{field} should be true or false, not {text!r}")


def pod_namespace(env: Mapping[str, str]) -> str:
    """The namespace the Lease lives in: the operator's own, as the chart sets it."""
    if env.get("CRONFLEET_LEADER_ELECTION_NAMESPACE"):
        return env["CRONFLEET_LEADER_ELECTION_NAMESPACE"]
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as handle:
            return handle.read().strip()
    except OSError:
        return "default"


def new_identity(pod_name: str) -> str:
    """The pod's name and a random suffix, as client-go's ``hostname_uuid``.

    The suffix tells a restarted container (same pod name) from its previous
    life, which may still be named in the Lease.
    """
    return f"{pod_name}_{uuid.uuid4().hex[:12]}"


def settings_from(
    env: Mapping[str, str],
    *,
    enable: str | None = None,
    lease_name: str | None = None,
    namespace: str | None = None,
    lease_duration: str | None = None,
    renew_deadline: str | None = None,
    retry_period: str | None = None,
) -> ElectionSettings | None:
    """The election's settings from the environment, command-line values first; None: off."""
    prefix = "CRONFLEET_LEADER_ELECTION"

    def setting(flag: str | None, suffix: str, default: str) -> tuple[str, str]:
        name = f"{prefix}_{suffix}" if suffix else prefix
        if flag is not None:
            return flag, "--leader-elect" + (
                f"-{suffix.lower().replace('_', '-')}" if suffix else ""
            )
        return env.get(name, default), name

    value, name = setting(enable, "", "")
    if not enabled(value, name):
        return None
    pod_name = env.get("POD_NAME") or env.get("HOSTNAME") or socket.gethostname()
    timings = {
        field: seconds(*setting(flag, suffix, str(default)))
        for field, flag, suffix, default in (
            ("lease_duration", lease_duration, "LEASE_DURATION", DEFAULT_LEASE_DURATION),
            ("renew_deadline", renew_deadline, "RENEW_DEADLINE", DEFAULT_RENEW_DEADLINE),
            ("retry_period", retry_period, "RETRY_PERIOD", DEFAULT_RETRY_PERIOD),
        )
    }
    return ElectionSettings(
        namespace=namespace or pod_namespace(env),
        identity=new_identity(pod_name),
        lease_name=lease_name or env.get(f"{prefix}_LEASE_NAME") or DEFAULT_LEASE_NAME,
        **timings,
    )


# -- deciding ---------------------------------------------------------------------------


def to_micro_time(moment: datetime) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _spec(lease: Mapping[str, Any] | None) -> Mapping[str, Any]:
    spec = (lease or {}).get("spec")
    return spec if isinstance(spec, Mapping) else {}


def holder_of(lease: Mapping[str, Any] | None) -> str:
    return str(_spec(lease).get("holderIdentity") or "")


@dataclass(frozen=True)
class Observation:
    """The Lease's record as last seen, and when (this process's monotonic clock)."""

    record: tuple[Any, ...]
    at: float


def _record(lease: Mapping[str, Any] | None) -> tuple[Any, ...]:
    spec = _spec(lease)
    return tuple(
        spec.get(key)
        for key in (
            "holderIdentity",
            "leaseDurationSeconds",
            "acquireTime",
            "renewTime",
            "leaseTransitions",
        )
    )


def observe(
    previous: Observation | None, lease: Mapping[str, Any] | None, now: float
) -> Observation:
    """Note when the record last changed: a holder is judged by our clock, not by its."""
    record = _record(lease)
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


class Step(StrEnum):
    ACQUIRE = "Acquire"  # nobody holds it, or its holder let it expire: take it
    RENEW = "Renew"  # ours: renew it
    WAIT = "Wait"  # another holds it and renews it: stand by


@dataclass(frozen=True)
class Decision:
    step: Step
    # The Lease to write (for ACQUIRE and RENEW): created when ``create``, else
    # replaced, conditionally on the resourceVersion it carries.
    lease: Body | None = None
    create: bool = False


def decide(
    lease: Mapping[str, Any] | None,
    identity: str,
    settings: ElectionSettings,
    observed: Observation,
    now: float,
    wall_now: datetime,
) -> Decision:
    """What to do with the Lease as read: acquire, renew or wait."""
    spec = _spec(lease)
    holder = holder_of(lease)
    stamp = to_micro_time(wall_now)
    duration = max(1, math.ceil(settings.lease_duration))
    if lease is None:
        return Decision(
            Step.ACQUIRE,
            {
                "apiVersion": LEASE_API_VERSION,
                "kind": "Lease",
                "metadata": {"name": settings.lease_name, "namespace": settings.namespace},
                "spec": {
                    "holderIdentity": identity,
                    "leaseDurationSeconds": duration,
                    "acquireTime": stamp,
                    "renewTime": stamp,
                    "leaseTransitions": 0,
                },
            },
            create=True,
        )
    transitions = _int(spec.get("leaseTransitions"))
    if holder == identity:
        new_spec = {
            **spec,
            "holderIdentity": identity,
            "leaseDurationSeconds": duration,
            "acquireTime": spec.get("acquireTime") or stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        }
        return Decision(Step.RENEW, _rewritten(lease, new_spec))
    held_for = _int(spec.get("leaseDurationSeconds")) or duration
    if holder and now < observed.at + held_for:
        return Decision(Step.WAIT)
    new_spec = {
        **spec,
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions + 1,
    }
    return Decision(Step.ACQUIRE, _rewritten(lease, new_spec))


def release(lease: Mapping[str, Any] | None, identity: str, wall_now: datetime) -> Body | None:
    """The Lease with nobody holding it, for a leader shutting down; None if not ours.

    A standby takes a Lease held by nobody at its next try, without waiting
    for the lease duration to pass.
    """
    if lease is None or holder_of(lease) != identity:
        return None
    stamp = to_micro_time(wall_now)
    spec = {
        **_spec(lease),
        "holderIdentity": "",
        "leaseDurationSeconds": RELEASED_DURATION_SECONDS,
        "acquireTime": stamp,
        "renewTime": stamp,
    }
    return _rewritten(lease, spec)


def needs_leadership(method: str, path: str) -> bool:
    """Whether a request changes what the cluster holds, so only the leader may send it.

    Reads, the Lease itself and the reviews that guard /metrics (the API
    server stores nothing for them) are every replica's to send.
    """
    if method.upper() in _READ_METHODS:
        return False
    return not any(pattern.match(path) for pattern in _UNGATED_PATHS)


def lost_leadership(renewed_at: float | None, now: float, renew_deadline: float) -> bool:
    """A leader that has not renewed within the renew deadline stops acting."""
    return renewed_at is not None and now >= renewed_at + renew_deadline


def _rewritten(lease: Mapping[str, Any], spec: Mapping[str, Any]) -> Body:
    meta = lease.get("metadata") or {}
    return {
        "apiVersion": LEASE_API_VERSION,
        "kind": "Lease",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            # The write is refused (409) if anyone wrote the Lease since it was read.
            "resourceVersion": meta.get("resourceVersion"),
            **({"labels": meta["labels"]} if meta.get("labels") else {}),
            **({"annotations": meta["annotations"]} if meta.get("annotations") else {}),
        },
        "spec": dict(spec),
    }


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# -- acting -----------------------------------------------------------------------------


class LeaseApi(Protocol):
    async def read_lease(self, namespace: str, name: str) -> Body | None: ...
    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> Body: ...
    async def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> Body: ...


class Leadership(Protocol):
    """Whether this process may act, as the controller asks it."""

    def is_leading(self) -> bool: ...
    async def wait_leading(self) -> None: ...
    async def release(self) -> None: ...


class Unelected:
    """No election (one replica): this process always acts."""

    def is_leading(self) -> bool:
        return True

    async def wait_leading(self) -> None:
        return None

    async def release(self) -> None:
        return None


class LeaderElector:
    """The thin loop around :func:`decide`: read, decide, write, every retry period.

    Leading is judged on the clock, not by the loop: :meth:`is_leading` turns
    false the moment the renew deadline has passed since the last renewal was
    sent, even if the loop itself is stuck waiting on the API server.
    """

    def __init__(
        self,
        api: LeaseApi,
        settings: ElectionSettings,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.settings = settings
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        # When the last successful renewal (or acquisition) was sent; None: not leading.
        self._renewed_at: float | None = None
        self._lease: Body | None = None
        self._observed: Observation | None = None
        self._leading = asyncio.Event()
        self._stopped = False
        self._seen_holder = ""

    def is_leading(self) -> bool:
        return not self._stopped and (
            self._renewed_at is not None
            and not lost_leadership(
                self._renewed_at, self._monotonic(), self.settings.renew_deadline
            )
        )

    async def wait_leading(self) -> None:
        while not self.is_leading():
            await self._leading.wait()
            if not self.is_leading():
                # Lost since the event was set: only a new process leads again.
                await asyncio.Event().wait()

    async def run(self) -> None:
        settings = self.settings
        log.info(
            "leader election: candidate %s for Lease %s/%s",
            settings.identity,
            settings.namespace,
            settings.lease_name,
        )
        while True:
            await self._try_once()
            if self._stopped:
                return
            if self._renewed_at is not None and not self.is_leading():
                self._stand_down("it could not renew the Lease within the renew deadline")
                return
            if self._renewed_at is not None:
                # A hanging renewal is cut at the renew deadline; the writes stop
                # on the clock already (is_leading), the process exits here.
                await asyncio.sleep(settings.retry_period)
            else:
                await asyncio.sleep(settings.retry_period * random.uniform(1, JITTER_FACTOR))

    async def _try_once(self) -> None:
        settings = self.settings
        started = self._monotonic()
        try:
            async with asyncio.timeout(settings.renew_deadline):
                # The leader decides from the Lease it wrote last: one request per
                # renewal; any other write since makes it a conflict, then a read.
                lease = self._lease
                if lease is None or holder_of(lease) != settings.identity:
                    lease = await self.api.read_lease(settings.namespace, settings.lease_name)
                self._observed = observe(self._observed, lease, started)
                decision = decide(
                    lease, settings.identity, settings, self._observed, started, self._wall_clock()
                )
                if decision.step is Step.WAIT:
                    self._lease = lease
                    if self._renewed_at is not None:
                        self._stand_down(f"{holder_of(lease)} holds the Lease now")
                    elif holder_of(lease) != self._seen_holder:
                        self._seen_holder = holder_of(lease)
                        log.info(
                            "leader election: %s leads; %s stands by",
                            self._seen_holder,
                            settings.identity,
                        )
                    return
                assert decision.lease is not None
                if decision.create:
                    written = await self.api.create_lease(settings.namespace, decision.lease)
                else:
                    written = await self.api.replace_lease(
                        settings.namespace, settings.lease_name, decision.lease
                    )
        except ApiError as error:
            self._lease = None  # read it again: someone else wrote it (409) or it is gone
            if error.status != 409:
                log.warning("leader election: Lease not %s: %s", self._verb(), error)
            return
        except Exception as error:  # timed out, unreachable, an odd answer: try again
            self._lease = None
            log.warning("leader election: Lease not %s: %r", self._verb(), error)
            return
        self._lease = written
        self._observed = observe(self._observed, written, started)
        was_leading = self._renewed_at is not None
        self._renewed_at = started
        if not was_leading:
            log.info(
                "leader election: %s became the leader (Lease %s/%s, transitions %s)",
                settings.identity,
                settings.namespace,
                settings.lease_name,
                _spec(written).get("leaseTransitions"),
            )
            self._leading.set()
            self.on_started_leading()

    def _verb(self) -> str:
        return "renewed" if self._renewed_at is not None else "acquired"

    def _stand_down(self, why: str) -> None:
        self._stopped = True
        log.error(
            "leader election: %s stopped leading: %s; it stops acting now",
            self.settings.identity,
            why,
        )
        self.on_stopped_leading()

    async def release(self) -> None:
        """Hand the Lease over at once on a graceful shutdown, if this process holds it."""
        if not self.is_leading():
            return
        self._stopped = True  # nothing acts past this point
        settings = self.settings
        try:
            async with asyncio.timeout(settings.retry_period):
                lease = self._lease or await self.api.read_lease(
                    settings.namespace, settings.lease_name
                )
                body = release(lease, settings.identity, self._wall_clock())
                if body is not None:
                    await self.api.replace_lease(settings.namespace, settings.lease_name, body)
                    log.info("leader election: %s released the Lease", settings.identity)
        except Exception as error:  # the standby then waits for the lease duration
            log.warning("leader election: Lease not released: %r", error)


def exit_process() -> None:
    """What a replica that lost the Lease does: exit, to be restarted as a clean standby.

    As client-go's callers do (``klog.Fatal`` in ``OnStoppedLeading``): the
    process may be halfway through a reconcile, and a new one starts with no
    state that could make it act on a stale view.
    """
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)
