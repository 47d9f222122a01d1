"""Carry out reconcile plans: the operator's acting side.

Informers (``cronfleet.informers``) feed the caches and queue keys; workers take a key,
read what is cached, ask ``reconcile.decide`` what to do, and do it: apply the
CronJob, post events, patch the status, and book the next look in the timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cronfleet.chains import UpstreamView, find_cycle, valid_cycles
from cronfleet.clock import Clock, SystemClock, from_rfc3339, to_rfc3339
from cronfleet.compact import compact
from cronfleet.config import OperatorConfig
from cronfleet.informers import Informer, Watched, start_informers
from cronfleet.kubeapi import (
    ApiError,
    KubeApi,
    NotLeaderError,
    cronjob_path,
    events_path,
    job_path,
    jobs_path,
    schedule_path,
)
from cronfleet.leaderelection import Leadership, Unelected, needs_leadership
from cronfleet.manifests import JOB_NAME_LABEL
from cronfleet.metrics import Metrics, miss_reason_label
from cronfleet.models import API_VERSION, GROUP, KIND, PLURAL, VERSION
from cronfleet.naming import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RECORDED_ANNOTATION,
    SCHEDULE_LABEL,
    TRIGGER_ANNOTATION,
    cronjob_name,
    labels,
)
from cronfleet.ownership import (
    controller_uid,
    name_holder,
    own_cronjob,
    own_pods,
    own_runs,
)
from cronfleet.reconcile import (
    Event,
    Observed,
    after_created,
    decide,
    merged_with_created,
    posted,
)
from cronfleet.runs import BLOCKING_WAIT_REASONS, NO_POD_GRACE, NO_POD_REASON, job_result
from cronfleet.timers import Timers
from cronfleet.validation import ParamsCheck
from cronfleet.workqueue import WorkQueue

log = logging.getLogger("cronfleet.controller")

Key = tuple[str, str]  # (namespace, schedule name)
Body = dict[str, Any]

ERROR_BACKOFF_MAX = 60.0
FAILURES_BEFORE_EVENT = 3
# How long reconciling waits for every kind's first listing (seconds at most, as a rule).
LISTING_WAIT_SECONDS = 60
EVENT_LOOKUP_INTERVAL = timedelta(seconds=15)


def known_tasks(config: OperatorConfig) -> frozenset[str] | None:
    """Task names Schedules may use: configured, else the runner's built-in ones."""
    if config.known_tasks:
        return config.known_tasks
    try:
        from cronfleet_runner.registry import builtin_task_schemas  # noqa: PLC0415

        return frozenset(builtin_task_schemas())
    except Exception as error:  # not installed beside the operator, or broken: do not guess
        log.warning("task names are not checked: the runner's registry is unavailable (%s)", error)
        return None


def params_check() -> ParamsCheck | None:
    """The runner's own params validation for its built-in tasks, when it is installed."""
    try:
        from cronfleet_runner.registry import validate_builtin_params  # noqa: PLC0415
    except Exception:
        return None
    return validate_builtin_params


@dataclass
class Controller:
    api: KubeApi
    config: OperatorConfig
    clock: Clock = field(default_factory=SystemClock)
    schedules: dict[Key, Body] = field(default_factory=dict)
    cronjobs: dict[Key, Body] = field(default_factory=dict)  # by (namespace, CronJob name)
    # Jobs by (namespace, schedule label value); pods by (namespace, Job name).
    jobs: dict[Key, dict[str, Body]] = field(default_factory=dict)
    pods: dict[Key, dict[str, Body]] = field(default_factory=dict)
    failures: dict[Key, int] = field(default_factory=dict)
    # ServiceAccounts by (namespace, name), from a watch: checking one costs no request.
    service_accounts: set[Key] = field(default_factory=set)
    # What the FailedCreate events of a Job whose pod could not be created say.
    job_messages: dict[Key, str] = field(default_factory=dict)
    # When each pod-less Job's events may be read again: one read per Job per
    # EVENT_LOOKUP_INTERVAL, however often its Schedule is reconciled.
    job_lookups: dict[Key, datetime] = field(default_factory=dict)
    # The API server's refusal of a Schedule's CronJob, by the generation it was for.
    rejections: dict[Key, tuple[int, str]] = field(default_factory=dict)
    # Schedules by the (namespace, ServiceAccount) their spec names.
    account_users: dict[Key, set[Key]] = field(default_factory=dict)
    # Downstream Schedules by the upstream their spec.after names (which may
    # not exist yet): a finishing upstream cycle queues just these.
    downstreams: dict[Key, set[Key]] = field(default_factory=dict)
    tasks: frozenset[str] | None = None
    metrics: Metrics | None = None
    # With two replicas, only the elected leader acts; the other keeps its
    # caches current and waits (see cronfleet.leaderelection).
    leader: Leadership = field(default_factory=Unelected)

    def __post_init__(self) -> None:
        self.queue: WorkQueue[Key] = WorkQueue()
        # A timer that comes due is a run or a check due now: it goes first.
        self.timers: Timers[Key] = Timers(self.clock, self.queue.add_urgent)
        self.background: list[asyncio.Task[None]] = []
        self.instance = (
            os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or socket.gethostname()
        )
        # Nothing is judged until the first listing of every kind is in: before
        # that, a run that happened would look missed, a CronJob missing.
        self.listed = asyncio.Event()
        self.informers: list[Informer] = []
        self._listing: asyncio.Task[None] | None = None
        if self.tasks is None:
            self.tasks = known_tasks(self.config)
        self.check_params = params_check()
        # Owned objects carry the Schedule's name in a label, shortened for long names.
        # Two long names may share a label value, or a CronJob name: a set each.
        self.by_label: dict[Key, set[str]] = {}
        self.by_cronjob: dict[Key, set[str]] = {}
        if self.metrics is None:
            self.metrics = Metrics(self.schedules.values, leading=self.leader.is_leading)
        self.api.on_request = self.metrics.api_requests.inc
        self.api.may_send = self._may_send
        # Schedules judged since start: a restart is over when all known ones are.
        self.judged: set[Key] = set()
        self.metrics.reconciled.set_function(lambda: float(len(self.judged)))

    def _may_send(self, method: str, path: str) -> bool:
        # The one gate every write passes: a standby, or a leader past its renew
        # deadline, sends none (status, events, CronJobs, Jobs), whoever asks.
        allowed = self.leader.is_leading() or not needs_leadership(method, path)
        if allowed and method != "GET" and self.metrics is not None:
            self.metrics.api_writes.inc()
        return allowed

    # -- watch side (called by the informers) ----------------------------------------

    def watched_kinds(self) -> list[Watched]:
        """What the caches hold, and where each kind's events go."""
        managed = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
        return [
            Watched(
                f"/apis/{GROUP}/{VERSION}", PLURAL, self.observe_schedule, self.schedules.values
            ),
            Watched(
                "/apis/batch/v1", "cronjobs", self.observe_cronjob, self.cronjobs.values, managed
            ),
            Watched("/apis/batch/v1", "jobs", self.observe_job, self._cached_jobs, managed),
            Watched("/api/v1", "pods", self.observe_pod, self._cached_pods, managed),
            Watched(
                "/api/v1",
                "serviceaccounts",
                self.observe_service_account,
                self._cached_service_accounts,
            ),
        ]

    def _cached_jobs(self) -> Iterable[Mapping[str, Any]]:
        return itertools.chain.from_iterable(jobs.values() for jobs in self.jobs.values())

    def _cached_pods(self) -> Iterable[Mapping[str, Any]]:
        return itertools.chain.from_iterable(pods.values() for pods in self.pods.values())

    def _cached_service_accounts(self) -> Iterable[Mapping[str, Any]]:
        return ({"metadata": {"namespace": ns, "name": name}} for ns, name in self.service_accounts)

    @property
    def warm(self) -> bool:
        return self.listed.is_set()

    def observe_schedule(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        label = (meta["namespace"], labels(meta["name"])[SCHEDULE_LABEL])
        self._index_account(key, body if event_type != "DELETED" else None)
        if event_type == "DELETED":
            self._follow_chain(key, None)
            if self.metrics is not None:
                self.metrics.forget(*key)
            self.schedules.pop(key, None)
            self.judged.discard(key)
            self.rejections.pop(key, None)
            self.timers.cancel(key)
            self.failures.pop(key, None)
            sharing = self.by_label.get(label, set())
            sharing.discard(meta["name"])
            if not sharing:
                self.by_label.pop(label, None)
                self.jobs.pop(label, None)
            cronjob_key = (meta["namespace"], cronjob_name(meta["name"]))
            rivals = self.by_cronjob.get(cronjob_key, set())
            rivals.discard(meta["name"])
            if not rivals:
                self.by_cronjob.pop(cronjob_key, None)
            # A Schedule that shared a name with this one may take it now.
            for name in sharing | rivals:
                self.queue.add((meta["namespace"], name))
            return
        if not _newer(body, self.schedules.get(key)):
            # Our own status write already gave us this copy or a newer one, and
            # the reconcile that wrote it decided on it: nothing new to look at.
            return
        self._follow_chain(key, body)
        self.schedules[key] = compact(body)
        for index, shared in (
            (self.by_label, label),
            (self.by_cronjob, (meta["namespace"], cronjob_name(meta["name"]))),
        ):
            sharing = index.setdefault(shared, set())
            if meta["name"] not in sharing:
                sharing.add(meta["name"])
                for name in sharing:
                    self.queue.add((meta["namespace"], name))
        self.queue.add(key)

    def _schedules_of(self, meta: Mapping[str, Any]) -> list[Key]:
        value = (meta.get("labels") or {}).get(SCHEDULE_LABEL)
        if not value:
            return []
        names = self.by_label.get((meta["namespace"], str(value)), ())
        return [(meta["namespace"], name) for name in names]

    def observe_job(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        value = (meta.get("labels") or {}).get(SCHEDULE_LABEL)
        if not value:
            return
        # Cached by label, not by Schedule: at start-up a Job may arrive before
        # its Schedule, and must still be there when the Schedule is reconciled.
        jobs = self.jobs.setdefault((meta["namespace"], value), {})
        if event_type == "DELETED":
            jobs.pop(meta["name"], None)
            self.pods.pop((meta["namespace"], meta["name"]), None)
            self.job_messages.pop((meta["namespace"], meta["name"]), None)
            self.job_lookups.pop((meta["namespace"], meta["name"]), None)
        elif not _older(body, jobs.get(meta["name"])):
            jobs[meta["name"]] = compact(body)
        for key in self._schedules_of(meta):
            self.queue.add(key)

    def observe_pod(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        job_name = (meta.get("labels") or {}).get(JOB_NAME_LABEL)
        keys = self._schedules_of(meta)
        if not keys or not job_name:
            return
        pods = self.pods.setdefault((meta["namespace"], job_name), {})
        if event_type == "DELETED":
            pods.pop(meta["name"], None)
        else:
            pods[meta["name"]] = compact(body)
            # A finished container tells the run's outcome; a container or pod
            # that cannot start is reported at once.
            if _finished_or_blocked(body):
                for key in keys:
                    self.queue.add(key)

    def observe_cronjob(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        namespace = meta["namespace"]
        cache_key = (namespace, meta["name"])
        if event_type == "DELETED":
            self.cronjobs.pop(cache_key, None)
        elif not _newer(body, self.cronjobs.get(cache_key)):
            return  # the copy our own apply answered with, or older: nothing new
        else:
            self.cronjobs[cache_key] = compact(body)
        owners = {
            str(ref.get("name"))
            for ref in meta.get("ownerReferences") or []
            if isinstance(ref, Mapping) and ref.get("kind") == KIND
        }
        owners |= {key[1] for key in self._schedules_of(meta)}
        # A Schedule waiting for this name (another held it) looks again.
        owners |= self.by_cronjob.get(cache_key, set())
        for owner in owners:
            if (namespace, owner) in self.schedules:
                self.queue.add((namespace, owner))

    def observe_service_account(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if event_type == "DELETED":
            self.service_accounts.discard(key)
        elif key in self.service_accounts:
            return  # an update (a new token, a label) changes nothing here
        else:
            self.service_accounts.add(key)
        for user in self.account_users.get(key, ()):
            self.queue.add(user)

    def _follow_chain(self, key: Key, body: Mapping[str, Any] | None) -> None:
        """Keep the upstream → downstreams index, and queue who must look again.

        Downstreams look again when their upstream appears, goes, or ends a run
        cycle (not on its other status writes). A change of spec.after queues
        every Schedule of the namespace's chains: their cycles, downstream lists
        and missing upstreams may all change with it.
        """
        namespace = key[0]
        old_body = self.schedules.get(key)
        old = _after_names(old_body)
        new = _after_names(body)
        if old != new:
            affected = {key}
            for upstream, downstreams in self.downstreams.items():
                if upstream[0] == namespace:
                    affected.add(upstream)
                    affected |= downstreams
            for name in old - new:
                users = self.downstreams.get((namespace, name))
                if users is not None:
                    users.discard(key)
                    if not users:
                        del self.downstreams[(namespace, name)]
            for name in new - old:
                self.downstreams.setdefault((namespace, name), set()).add(key)
            affected |= {(namespace, name) for name in old | new}
            for other in affected:
                if other != key and other in self.schedules:
                    self.queue.add(other)
        if old_body is None or body is None or _last_cycle(old_body) != _last_cycle(body):
            for downstream in self.downstreams.get(key, ()):
                if downstream != key:
                    self.queue.add(downstream)

    def _index_account(self, key: Key, body: Mapping[str, Any] | None) -> None:
        old = (self.schedules.get(key, {}).get("spec") or {}).get("serviceAccountName")
        new = ((body or {}).get("spec") or {}).get("serviceAccountName")
        if old == new and body is not None:
            return
        if old:
            users = self.account_users.get((key[0], old))
            if users is not None:
                users.discard(key)
                if not users:
                    del self.account_users[(key[0], old)]
        if new:
            self.account_users.setdefault((key[0], str(new)), set()).add(key)

    # -- workers ------------------------------------------------------------------------

    def start(self, watch: bool = True) -> None:
        """Run the timers and workers, and with ``watch`` the informers that fill the
        caches (without, the caller feeds them through the ``observe_*`` methods)."""
        loop = asyncio.get_running_loop()
        self.background.append(loop.create_task(self.timers.run(), name="cronfleet-timers"))
        kinds = self.watched_kinds() if watch else []
        self.informers = start_informers(self.api, kinds, self.config.namespaces)
        for informer in self.informers:
            name = f"cronfleet-watch-{informer.watched.where(informer.namespace)}"
            self.background.append(loop.create_task(informer.run(), name=name))
        # Not among the background tasks: it ends once the listings are in, and
        # the liveness probe reports any background task that ends.
        self._listing = loop.create_task(self._await_listings(), name="cronfleet-listed")
        for index in range(self.config.workers):
            self.background.append(loop.create_task(self._worker(), name=f"cronfleet-{index}"))

    async def _await_listings(self) -> None:
        started = time.monotonic()
        waits = {
            asyncio.ensure_future(informer.listed.wait()): informer for informer in self.informers
        }
        if waits:
            _, pending = await asyncio.wait(waits, timeout=LISTING_WAIT_SECONDS)
            if pending:
                # A kind the operator may not list (RBAC) must not stop every
                # Schedule: judge without it, and say which (its informer keeps
                # retrying and warns at each failure).
                missing = ", ".join(
                    sorted(waits[w].watched.where(waits[w].namespace) for w in pending)
                )
                log.error(
                    "not listed after %d s: %s; reconciling without them",
                    LISTING_WAIT_SECONDS,
                    missing,
                )
                for wait in pending:
                    wait.cancel()
        log.info(
            "listed %d Schedules, %d CronJobs, %d Jobs in %.1f s",
            len(self.schedules),
            len(self.cronjobs),
            sum(len(jobs) for jobs in self.jobs.values()),
            time.monotonic() - started,
        )
        self.listed.set()

    async def stop(self) -> None:
        tasks = [*self.background, *([self._listing] if self._listing is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.background.clear()
        self._listing = None
        await self.leader.release()
        await self.api.close()

    def lead(self) -> None:
        """Newly elected: look at every Schedule at once, from caches already current.

        Retries that came due, run-now tokens and missed runs that the previous
        leader left are all handled on this first pass.
        """
        log.info("leading: reconciling all %d known Schedules", len(self.schedules))
        for key in self.schedules:
            self.queue.add(key)

    async def _worker(self) -> None:
        while True:
            # A standby's workers take nothing: keys wait, de-duplicated, in the queue.
            await self.leader.wait_leading()
            # Keys wait, de-duplicated, until every first listing is in.
            await self.listed.wait()
            key = await self.queue.get()
            try:
                started = time.monotonic()
                await self.reconcile(key)
                if key in self.schedules:
                    self.judged.add(key)
                if self.metrics is not None:
                    self.metrics.reconcile_duration.observe(time.monotonic() - started)
                self.failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except ApiError as error:
                if error.status == 409:
                    # A newer copy is on its way through the watch, which queues
                    # the key again; look once more soon in case it does not.
                    self.timers.schedule(key, self.clock.now() + timedelta(seconds=1))
                    continue
                await self._failed(key, error)
            except Exception as error:
                await self._failed(key, error)
            finally:
                self.queue.done(key)

    async def _failed(self, key: Key, error: Exception) -> None:
        # Never let one Schedule stop the others: log, back off, retry.
        count = self.failures.get(key, 0) + 1
        self.failures[key] = count
        delay = min(ERROR_BACKOFF_MAX, 0.5 * 2**count)
        log.warning("reconcile of %s/%s failed (%s); again in %.0fs", *key, error, delay)
        self.timers.schedule(key, self.clock.now() + timedelta(seconds=delay))
        if self.metrics is not None:
            self.metrics.reconcile_errors.inc()
        schedule = self.schedules.get(key)
        if count == FAILURES_BEFORE_EVENT and schedule is not None:
            # A Schedule the operator keeps failing on must not look quietly fine.
            text = f"{type(error).__name__}: {error}"
            await self.post_event(
                schedule,
                Event(
                    "Warning",
                    "ReconcileFailed",
                    f"the operator failed {count} times in a row on this Schedule and keeps "
                    f"retrying with backoff: {text}",
                ),
            )

    # -- one reconcile ---------------------------------------------------------------------

    async def reconcile(self, key: Key) -> None:
        schedule = self.schedules.get(key)
        if schedule is None or schedule["metadata"].get("deletionTimestamp"):
            return
        namespace, name = key
        spec = schedule.get("spec") or {}
        account = spec.get("serviceAccountName")
        now = self.clock.now()
        warm = self.warm
        account_exists: bool | None = None
        if account and warm:
            account_exists = (namespace, account) in self.service_accounts
        label = (namespace, labels(name)[SCHEDULE_LABEL])
        uid = str(schedule["metadata"].get("uid") or "")
        cached_cronjob = self.cronjobs.get((namespace, cronjob_name(name)))
        cronjob = own_cronjob(cached_cronjob, uid)
        # Runs by controller owner reference: a Job that only carries the label
        # (anyone who may create Jobs can set it) is not a run of this Schedule.
        jobs = own_runs(self.jobs.get(label, {}).values(), uid, cronjob)
        await self._look_up_failed_creates(namespace, jobs, now)
        observed = Observed(
            schedule=schedule,
            cronjob=cronjob,
            service_account_exists=account_exists,
            known_tasks=self.tasks,
            check_params=self.check_params,
            jobs=jobs,
            check_missed=warm,
            job_messages={
                job["metadata"]["name"]: self.job_messages[(namespace, job["metadata"]["name"])]
                for job in jobs
                if (namespace, job["metadata"]["name"]) in self.job_messages
            },
            pods={
                job["metadata"]["name"]: own_pods(
                    self.pods.get((namespace, job["metadata"]["name"]), {}).values(), job
                )
                for job in jobs
            },
            ownership_conflict=self._ownership_conflict(key, schedule, cached_cronjob),
        )
        observed = dataclasses.replace(observed, **self._chain(key, spec, warm))
        generation = int(schedule["metadata"].get("generation") or 0)
        rejected = self.rejections.get(key)
        if rejected is not None and rejected[0] == generation:
            observed = dataclasses.replace(observed, cronjob_rejection=rejected[1])
        plan = decide(observed, self.config, now)
        metrics = self.metrics
        assert metrics is not None

        # The CronJob first: when the API server refuses it, that is fed back as
        # an observation and decided again, before anything else is acted on.
        if plan.apply_cronjob is not None:
            try:
                applied = await self.api.apply(
                    cronjob_path(namespace, cronjob_name(name)), plan.apply_cronjob
                )
                # Cache what the server holds now, so the next reconcile does
                # not apply again before the watch has caught up.
                self.cronjobs[(namespace, cronjob_name(name))] = compact(applied)
                log.info("applied CronJob %s/%s", namespace, cronjob_name(name))
            except ApiError as error:
                if not _rejects_input(error):
                    raise
                self.rejections[key] = (generation, error.message)
                observed = dataclasses.replace(observed, cronjob_rejection=error.message)
                plan = decide(observed, self.config, now)

        made: list[dict[str, Any]] = []
        for job in plan.create_jobs:
            try:
                created = await self.api.create(jobs_path(namespace), job)
                made.append(compact(created))
                self.jobs.setdefault(label, {})[created["metadata"]["name"]] = made[-1]
                trigger = job["metadata"]["annotations"][TRIGGER_ANNOTATION]
                metrics.of(metrics.runs_started, namespace, name, trigger).inc()
                if trigger in ("Retry", "Manual"):
                    counter = metrics.retries if trigger == "Retry" else metrics.manual_runs
                    metrics.of(counter, namespace, name).inc()
                log.info("created %s Job %s/%s", trigger, namespace, job["metadata"]["name"])
            except ApiError as error:
                # A deterministic name already taken means this run exists: done.
                if error.status != 409:
                    raise

        # Marks first: the status below drops these Jobs' names from its ledger.
        for job_name in plan.recorded:
            try:
                marked = await self.api.merge_patch(
                    job_path(namespace, job_name),
                    {"metadata": {"annotations": {RECORDED_ANNOTATION: "true"}}},
                )
                cached = self.jobs.get(label, {})
                if job_name in cached and not _older(marked, cached[job_name]):
                    cached[job_name] = compact(marked)
            except ApiError as error:
                if error.status != 404:  # already gone: nothing left to mark
                    raise
        if made:
            # The new runs enter the history in this look's status write, not the
            # next one's: decided again as if the Jobs and the status were in.
            again = decide(after_created(observed, plan, made), self.config, now)
            plan = merged_with_created(plan, again) or plan

        if plan.status_patch:
            # The resourceVersion makes the write conditional: a status computed
            # from a stale copy is refused (409) rather than counting a run twice.
            patch = {
                "metadata": {"resourceVersion": schedule["metadata"]["resourceVersion"]},
                "status": plan.status_patch,
            }
            updated = await self.api.merge_patch(schedule_path(namespace, name, "status"), patch)
            if key in self.schedules:
                # Its watch event will bring nothing new: follow the chain now.
                self._follow_chain(key, updated)
                self.schedules[key] = compact(updated)
        for event in posted(plan.events, self.config):
            await self.post_event(schedule, event)
        for record in plan.finished:
            result = record.result.value if record.result else "Unknown"
            metrics.of(metrics.runs, namespace, name, record.trigger.value, result).inc()
            if record.duration_seconds is not None:
                metrics.of(metrics.run_duration, namespace, name).observe(record.duration_seconds)
        for miss in plan.missed:
            metrics.of(metrics.missed_runs, namespace, name, miss_reason_label(miss.cause)).inc()
        if plan.delete_cronjob:
            try:
                await self.api.delete(cronjob_path(namespace, cronjob_name(name)))
                log.info("deleted CronJob %s/%s: the cadence is not a cron", namespace, name)
            except ApiError as error:
                if error.status != 404:
                    raise
        for job_name in plan.delete_jobs:
            try:
                await self.api.delete(job_path(namespace, job_name))
                log.info("deleted Job %s/%s", namespace, job_name)
            except ApiError as error:
                if error.status != 404:  # already gone
                    raise
        if plan.delete_schedule:
            # Completed and past ttlSecondsAfterCompleted; its Jobs go with it.
            try:
                await self.api.delete(schedule_path(namespace, name))
                log.info("deleted Schedule %s/%s: ttlSecondsAfterCompleted", namespace, name)
            except ApiError as error:
                if error.status != 404:
                    raise
            return
        if plan.requeue_at is not None:
            self.timers.schedule(key, plan.requeue_at)
        else:
            self.timers.cancel(key)

    def _ownership_conflict(
        self, key: Key, schedule: Mapping[str, Any], cronjob: Mapping[str, Any] | None
    ) -> str | None:
        """Why this Schedule may not take its CronJob name, if it may not."""
        namespace, name = key
        rivals = [
            self.schedules[(namespace, other)]
            for other in self.by_cronjob.get((namespace, cronjob_name(name)), ())
            if other != name and (namespace, other) in self.schedules
        ]
        uid = schedule["metadata"].get("uid")

        def taken_by(holder: Mapping[str, Any]) -> str:
            return (
                f"Schedule {holder['metadata']['name']} already owns the CronJob and run names "
                f"{cronjob_name(name)!r} that the name {name!r} maps to (names longer than 52 "
                "characters are shortened with a hash): rename one of them"
            )

        if cronjob is not None:
            # Whoever controls the CronJob keeps it, however old the rivals are.
            holder_uid = controller_uid(cronjob)
            if holder_uid == uid:
                return None
            rival = next((r for r in rivals if r["metadata"].get("uid") == holder_uid), None)
            if rival is not None:
                return taken_by(rival)
            owner = next(
                (
                    f"{ref.get('kind')}/{ref.get('name')}"
                    for ref in cronjob["metadata"].get("ownerReferences") or []
                    if isinstance(ref, Mapping) and ref.get("controller") is True
                ),
                "no controller",
            )
            return (
                f"CronJob {cronjob_name(name)} already exists and is not this Schedule's "
                f"(its controller: {owner}); the operator does not adopt it: delete or rename it"
            )
        # No CronJob (yet, or an interval cadence): the Schedule created first.
        holder = name_holder(schedule, rivals)
        return taken_by(holder) if holder is not None else None

    def _chain(self, key: Key, spec: Mapping[str, Any], warm: bool) -> dict[str, Any]:
        """The upstreams, downstreams and any cycle of spec.after, from the cache."""
        namespace, name = key
        upstreams: dict[str, UpstreamView | None] = {}
        for upstream in _after_names({"spec": spec}):
            body = self.schedules.get((namespace, upstream))
            if body is not None:
                upstreams[upstream] = UpstreamView(
                    uid=str(body["metadata"].get("uid") or ""),
                    cycles=valid_cycles((body.get("status") or {}).get("cycles")),
                )
            elif warm:
                upstreams[upstream] = None  # before that, it may just not be listed yet

        def upstreams_of(schedule: str) -> list[str]:
            return sorted(_after_names(self.schedules.get((namespace, schedule))))

        return {
            "upstreams": upstreams,
            "downstreams": sorted(d[1] for d in self.downstreams.get(key, ()) if d != key),
            "after_cycle": find_cycle(name, upstreams_of) if _after_names({"spec": spec}) else None,
        }

    async def _look_up_failed_creates(
        self, namespace: str, jobs: Sequence[Mapping[str, Any]], now: datetime
    ) -> None:
        """Read why the Job controller could not create a run's pod, once per Job.

        Only Jobs with no pod at all past the grace period are looked up, each
        at most once per EVENT_LOOKUP_INTERVAL, so a healthy Schedule costs no
        request here and a slow Job controller costs one read per Job in 15 s.
        """
        for job in jobs:
            job_name = job["metadata"]["name"]
            created = job["metadata"].get("creationTimestamp")
            if (
                job_result(job) is not None
                or (namespace, job_name) in self.job_messages
                or self.pods.get((namespace, job_name))
                or not created
                or now - from_rfc3339(created) < NO_POD_GRACE
                or now < self.job_lookups.get((namespace, job_name), now)
            ):
                continue
            self.job_lookups[(namespace, job_name)] = now + EVENT_LOOKUP_INTERVAL
            try:
                found = await self.api.request(
                    "GET",
                    events_path(namespace),
                    query={
                        "fieldSelector": f"involvedObject.kind=Job,involvedObject.name={job_name}"
                    },
                )
            except ApiError as error:
                log.warning("events of Job %s/%s not read: %s", namespace, job_name, error)
                continue
            failures = [
                item
                for item in found.get("items") or []
                if item.get("reason") == NO_POD_REASON and item.get("message")
            ]
            if failures:
                latest = max(failures, key=lambda item: str(item.get("lastTimestamp") or ""))
                self.job_messages[(namespace, job_name)] = str(latest["message"])

    async def post_event(self, schedule: Mapping[str, Any], event: Event) -> None:
        meta = schedule["metadata"]
        stamp = to_rfc3339(self.clock.now())
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": "cronfleet"},
            "reportingComponent": "cronfleet.io/operator",
            "reportingInstance": self.instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.api.create(events_path(meta["namespace"]), body)
        except (ApiError, NotLeaderError) as error:
            # An event that cannot be written must not block the reconcile.
            log.warning("event %s for %s/%s not posted: %s", event.reason, *_key(meta), error)


def _older(new: Mapping[str, Any], cached: Mapping[str, Any] | None) -> bool:
    """Whether ``new`` is an older copy than the cached one (etcd revisions are ordered)."""
    if cached is None:
        return False
    new_rv = str(new["metadata"].get("resourceVersion", ""))
    old_rv = str(cached["metadata"].get("resourceVersion", ""))
    return new_rv.isdigit() and old_rv.isdigit() and int(new_rv) < int(old_rv)


def _newer(new: Mapping[str, Any], cached: Mapping[str, Any] | None) -> bool:
    """Whether ``new`` is a later copy than the cached one (or nothing is cached)."""
    if cached is None:
        return True
    new_rv = str(new["metadata"].get("resourceVersion", ""))
    old_rv = str(cached["metadata"].get("resourceVersion", ""))
    if new_rv.isdigit() and old_rv.isdigit():
        return int(new_rv) > int(old_rv)
    return new_rv != old_rv


def _after_names(body: Mapping[str, Any] | None) -> set[str]:
    """The upstream names of a Schedule's spec.after, whatever shape it has."""
    after = ((body or {}).get("spec") or {}).get("after")
    if not isinstance(after, list):
        return set()
    return {
        str(entry["schedule"])
        for entry in after
        if isinstance(entry, Mapping) and entry.get("schedule")
    }


def _last_cycle(body: Mapping[str, Any]) -> Any:
    cycles = (body.get("status") or {}).get("cycles")
    if isinstance(cycles, list) and cycles and isinstance(cycles[0], Mapping):
        return (body["metadata"].get("uid"), cycles[0].get("number"))
    return (body["metadata"].get("uid"), None)


def _finished_or_blocked(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if "terminated" in state:
            return True
        if (state.get("waiting") or {}).get("reason") in BLOCKING_WAIT_REASONS:
            return True
    return any(
        condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable"
        for condition in status.get("conditions") or []
    )


def _rejects_input(error: ApiError) -> bool:
    """Whether the API server refused the object for what it holds (not a passing fault)."""
    if error.status in (400, 422):
        return True
    # Server-side apply reports some invalid values as a failed conversion.
    return error.status == 500 and "unable to convert" in error.message


def _key(meta: Mapping[str, Any]) -> Key:
    return (meta["namespace"], meta["name"])
