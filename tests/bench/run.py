"""`make bench`: the operator's reconcile speed and cost on the real local control plane.

Prints one table. Ratios compare the operator with a floor measured in the same
run: a bare client doing the same API writes with the same concurrency.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cronfleet_devcluster.binaries import ensure_binaries
from cronfleet_devcluster.controlplane import ControlPlane, free_port
from cronfleet_devcluster.kube import (
    APPLY_PATCH,
    CRONJOBS,
    JOBS,
    NAMESPACES,
    SCHEDULES,
    ApiError,
    Kube,
    Object,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "bench"
FLOOR_NAMESPACE = "bench-floor"
# (h)'s hourly Schedules have no fire time for this long after they are created.
IDLE_GAP_SECONDS = 900
# (g) waits this long after the interval for the Jobs of its last fire times.
LATENESS_GRACE_SECONDS = 15
# (g') gives its Schedules this many times (b)'s time per Schedule to become Active
# before their first fire time (plus UNRUN_LEAD_SECONDS).
UNRUN_LEAD_FACTOR = 1.5
UNRUN_LEAD_SECONDS = 5
# Groups the benchmark's interval Schedules, so waiting for them lists only them.
GROUP_LABEL = "bench.cronfleet.io/group"
# --scale measures at this many Schedules first, then at --scale-count.
SCALE_FIRST = 1000


def schedule(name: str) -> Object:
    return {
        "apiVersion": "cronfleet.io/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name},
        # Once a year: the benchmark measures reconciling, not runs (and a run
        # the clock happens to start calls loopback, looking up no name).
        "spec": {"cron": "0 0 1 1 *", "task": "http", "params": {"url": "http://127.0.0.1:9/"}},
    }


def interval_schedule(name: str, group: str, every_seconds: int, start: int) -> Object:
    """A Schedule the operator runs itself: fire times are ``start + k*every`` (unix seconds)."""
    return {
        "apiVersion": "cronfleet.io/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name, "labels": {GROUP_LABEL: group}},
        "spec": {
            "every": f"{every_seconds}s",
            "startTime": rfc3339(start),
            "task": "sleep",
            "params": {"seconds": 0},
        },
    }


def rfc3339(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix_seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def metric(metrics_url: str, name: str) -> float:
    """One unlabelled series of the operator's metrics.

    Only that family is asked for (``name[]``): a full scrape renders every
    Schedule's series, which at 10,000 Schedules costs the operator real CPU.
    """
    family = name.removesuffix("_total")
    query = urllib.parse.urlencode([("name[]", family), ("name[]", f"{family}_total")])
    with urllib.request.urlopen(f"{metrics_url}?{query}", timeout=30) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    raise RuntimeError(f"{name} is not exported")


def api_requests(metrics_url: str) -> float:
    return metric(metrics_url, "cronfleet_api_requests_total")


def retry_latencies(kube: Kube, samples: int) -> list[float]:
    """Seconds from a Job's Failed condition to its retry Job, both as a watch delivers them."""
    body = schedule("retry-chain")
    body["spec"].update(
        task="sleep",
        params={"seconds": 0, "exitCode": 1},
        retry={"maxRetries": samples, "backoff": {"initialDelaySeconds": 0, "factor": 1}},
    )
    kube.create(SCHEDULES, body, OPERATOR_NAMESPACE)
    version = kube.listing(JOBS, OPERATOR_NAMESPACE)["metadata"]["resourceVersion"]
    kube.patch(
        SCHEDULES,
        "retry-chain",
        {"metadata": {"annotations": {"cronfleet.io/run-now": "bench"}}},
        OPERATOR_NAMESPACE,
    )
    failed_at: dict[int, float] = {}
    created_at: dict[int, float] = {}
    deadline = time.monotonic() + 60 + samples * 10
    while len(created_at) < samples and time.monotonic() < deadline:
        for event in kube.watch(JOBS, version, OPERATOR_NAMESPACE, timeout_seconds=30):
            seen = time.monotonic()
            job = event["object"]
            version = job["metadata"]["resourceVersion"]
            if event["type"] == "BOOKMARK":
                continue
            attempt = int(
                (job["metadata"].get("annotations") or {}).get("cronfleet.io/attempt", "0")
            )
            if event["type"] == "ADDED" and attempt:
                created_at.setdefault(attempt, seen)
            conditions = (job.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Failed" and c["status"] == "True" for c in conditions):
                failed_at.setdefault(attempt, seen)
            if len(created_at) >= samples:
                break
    return [
        created_at[attempt] - failed_at[attempt - 1]
        for attempt in sorted(created_at)
        if attempt - 1 in failed_at
    ]


def wait_counter_still(metrics_url: str, still_seconds: float, timeout: float) -> float:
    """Until the operator's request counter has not moved for ``still_seconds``: the
    creates' trailing writes are over (a counter that never stops ends at ``timeout``).

    Returns when (``time.monotonic()``) the counter last moved: the end of the tail.
    """
    deadline = time.monotonic() + timeout
    last = api_requests(metrics_url)
    since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < still_seconds:
        time.sleep(1)
        current = api_requests(metrics_url)
        if current != last:
            last, since = current, time.monotonic()
    return since


@dataclass
class Lateness:
    """The Jobs the operator started for the fire times in one interval."""

    seconds: list[float]
    expected: int
    # Of those, how many had succeeded by the end of the grace period.
    complete: int


def fire_lateness(
    kube: Kube,
    prefix: str,
    count: int,
    every: int,
    grace: int,
    window_start: int | None = None,
    await_complete: bool = True,
) -> Lateness:
    """Seconds from each fire time to the ADDED watch event of its Job, over one interval.

    creationTimestamp has whole seconds only, so the time the event arrives here
    stands for the creation: it is later by the API server's watch delivery.
    The watch starts before the interval, so every event in it arrives live;
    each of the ``count`` Schedules has exactly one fire time in the interval,
    which starts at ``window_start`` (unix seconds; by default, in a second).
    With ``await_complete``, it then waits up to ``grace`` seconds after the
    interval for those Jobs to succeed.
    """
    version = kube.listing(JOBS, OPERATOR_NAMESPACE)["metadata"]["resourceVersion"]
    if window_start is None:
        window_start = math.ceil(time.time()) + 1
    window_end = window_start + every
    deadline = window_end + grace
    lateness: dict[str, float] = {}
    while len(lateness) < count and time.time() < deadline:
        remaining = max(1, math.ceil(deadline - time.time()))
        for event in kube.watch(JOBS, version, OPERATOR_NAMESPACE, timeout_seconds=remaining):
            arrived = time.time()
            job = event["object"]
            version = job["metadata"]["resourceVersion"]
            if event["type"] == "ERROR":
                raise RuntimeError(f"the Job watch failed: {job}")
            if event["type"] != "ADDED":
                continue
            meta = job["metadata"]
            annotations = meta.get("annotations") or {}
            scheduled = annotations.get("cronfleet.io/scheduled-time")
            owner = (meta.get("labels") or {}).get("cronfleet.io/schedule", "")
            if scheduled is None or not owner.startswith(prefix):
                continue
            fire = unix_seconds(scheduled)
            if window_start <= fire < window_end:
                lateness.setdefault(meta["name"], arrived - fire)
            if len(lateness) >= count or arrived >= deadline:
                break
    complete = 0
    while await_complete:
        complete = sum(
            1
            for job in kube.items(JOBS, OPERATOR_NAMESPACE)
            if job["metadata"]["name"] in lateness and (job.get("status") or {}).get("succeeded")
        )
        if complete >= len(lateness) or time.time() >= deadline:
            break
        time.sleep(1)
    return Lateness(sorted(lateness.values()), count, complete)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return values[max(0, math.ceil(len(values) * fraction) - 1)]


def process_usage(pid: int) -> tuple[float, float]:
    """(RSS in MiB, CPU seconds) of a process."""
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return rss_kib / 1024, cpu


def wait_group_active(
    kube: Kube, group: str, count: int, timeout: float, phase: str = "Active"
) -> None:
    """Until ``count`` Schedules of a group are in ``phase`` (interval ones have no CronJob)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = kube.items(SCHEDULES, OPERATOR_NAMESPACE, label_selector=f"{GROUP_LABEL}={group}")
        done = sum(1 for item in items if (item.get("status") or {}).get("phase") == phase)
        if done >= count:
            return
        time.sleep(1)
    raise RuntimeError(f"only some of {count} Schedules of {group} became {phase} in {timeout}s")


def wait_all_active(
    kube: Kube, namespace: str, count: int, timeout: float, poll: float = 0.25
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        items = kube.items(SCHEDULES, namespace)
        active = sum(1 for item in items if (item.get("status") or {}).get("phase") == "Active")
        if active >= count:
            cronjobs = len(kube.items(CRONJOBS, namespace))
            if cronjobs >= count:
                return time.monotonic()
        time.sleep(poll)
    raise RuntimeError(f"only some of {count} Schedules became Active in {timeout}s")


def parallel(count: int, concurrency: int, work: Callable[[int], Any]) -> float:
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(work, range(count)))
    return time.monotonic() - started


@dataclass(frozen=True)
class Writes:
    """What the operator wrote for one Schedule: its CronJob and its status."""

    cronjob: Object
    status: Object


def operator_writes(kube: Kube, name: str) -> Writes:
    """The operator's writes for Schedule ``name``, read back, for the floor to repeat."""
    cronjob = kube.get(CRONJOBS, name, OPERATOR_NAMESPACE)
    meta = cronjob["metadata"]
    applied = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {key: meta[key] for key in ("labels", "annotations") if key in meta},
        "spec": cronjob["spec"],
    }
    return Writes(applied, kube.get(SCHEDULES, name, OPERATOR_NAMESPACE)["status"])


def floor_item(kube: Kube, name: str, writes: Writes) -> None:
    """What the operator's writes for one Schedule cost a bare client: the user's
    Schedule create, then the very requests the operator sends: the CronJob's
    server-side apply and the status patch, with the same bodies."""
    created = kube.create(SCHEDULES, schedule(name), FLOOR_NAMESPACE)
    owner = {
        "apiVersion": "cronfleet.io/v1alpha1",
        "kind": "Schedule",
        "name": name,
        "uid": created["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    cronjob = {
        **writes.cronjob,
        "metadata": {**writes.cronjob["metadata"], "name": name, "ownerReferences": [owner]},
    }
    kube.request(
        "PATCH",
        CRONJOBS.path(FLOOR_NAMESPACE, name),
        cronjob,
        query={"fieldManager": "cronfleet", "force": True},
        content_type=APPLY_PATCH,
    )
    kube.patch(SCHEDULES, name, {"status": writes.status}, FLOOR_NAMESPACE, sub="status")


def start_operator(
    kubeconfig: Path, log_path: Path, metrics_port: int, workers: int
) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        KUBECONFIG=str(kubeconfig),
        CRONFLEET_WORKERS=str(workers),
        CRONFLEET_METRICS_PORT=str(metrics_port),
    )
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "cronfleet-operator"),
                "--namespace",
                OPERATOR_NAMESPACE,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_metric(metrics_url: str, name: str, at_least: float, timeout: float) -> float:
    """Until a metric of a starting operator reaches ``at_least``; when (monotonic) it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if metric(metrics_url, name) >= at_least:
                return time.monotonic()
        except OSError:
            pass  # not serving yet
        time.sleep(0.25)
    raise RuntimeError(f"{name} did not reach {at_least:.0f} in {timeout:.0f} s")


@dataclass
class Creation:
    """Schedules created at once, up to all Active and the operator's requests over."""

    count: int
    active_seconds: float
    # Until the operator's request counter last moved (quiet for --scale-quiet-seconds after).
    settled_seconds: float
    requests: float
    cpu_seconds: float
    rss_mib: float


class CounterWatch:
    """Samples the operator's request counter every 0.2 s from a thread: when it last
    moved is the end of a burst's requests, to the sample (polling the Schedules
    for Active, which lists thousands, is coarser)."""

    def __init__(self, metrics_url: str) -> None:
        self.metrics_url = metrics_url
        self.value = api_requests(metrics_url)
        self.moved = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            current = api_requests(self.metrics_url)
            if current != self.value:
                self.value, self.moved = current, time.monotonic()

    def wait_still(self, still_seconds: float, timeout: float) -> float:
        """Until the counter has not moved for ``still_seconds``; when it last moved."""
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.moved < still_seconds:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the operator's requests did not stop for {still_seconds} s")
            time.sleep(0.2)
        self._stop.set()
        self._thread.join()
        return self.moved


def create_at_once(
    kube: Kube,
    operator: subprocess.Popen[bytes],
    metrics_url: str,
    first: int,
    count: int,
    concurrency: int,
    quiet: float,
) -> Creation:
    """Schedules s-<first> .. s-<first+count-1> created at once by ``concurrency`` threads."""
    requests_before = api_requests(metrics_url)
    _, cpu_before = process_usage(operator.pid)
    counter = CounterWatch(metrics_url)
    began = time.monotonic()
    parallel(
        count,
        concurrency,
        lambda i: kube.create(SCHEDULES, schedule(f"s-{first + i}"), OPERATOR_NAMESPACE),
    )
    # Listing thousands of Schedules and CronJobs loads the API server: not too often.
    # The warm-up Schedule is Active too.
    active = wait_all_active(kube, OPERATOR_NAMESPACE, 1 + first + count, 1800, poll=2)
    # Every Schedule's last request is the status patch that made it Active: the
    # burst is over when the counter last moved, provided it stays still after.
    settled = counter.wait_still(quiet, 900)
    rss, cpu = process_usage(operator.pid)
    return Creation(
        count=count,
        active_seconds=active - began,
        settled_seconds=settled - began,
        requests=api_requests(metrics_url) - requests_before,
        cpu_seconds=cpu - cpu_before,
        rss_mib=rss,
    )


@dataclass
class Runs:
    """One interval of every-minute Schedules whose pods really run, in steady state."""

    count: int
    requests: float
    cpu_seconds: float
    jobs: Lateness
    # Seconds from each fire time to the watch event whose status.nextRunTime moved past it.
    next_run: list[float]


def next_run_moves(
    kube: Kube, version: str, prefix: str, until: float, out: dict[str, list[tuple[float, str]]]
) -> None:
    """Record (arrival, status.nextRunTime) of every Schedule event until ``until``."""
    while time.time() < until:
        remaining = max(1, math.ceil(until - time.time()))
        for event in kube.watch(SCHEDULES, version, OPERATOR_NAMESPACE, timeout_seconds=remaining):
            arrived = time.time()
            body = event["object"]
            if event["type"] == "ERROR":
                raise RuntimeError(f"the Schedule watch failed: {body}")
            version = body["metadata"]["resourceVersion"]
            if event["type"] == "BOOKMARK":
                continue
            name = body["metadata"]["name"]
            next_run = (body.get("status") or {}).get("nextRunTime")
            if name.startswith(prefix) and next_run:
                out.setdefault(name, []).append((arrived, next_run))
            if arrived >= until:
                return


def measure_runs(
    kube: Kube,
    operator: subprocess.Popen[bytes],
    metrics_url: str,
    count: int,
    concurrency: int,
) -> Runs:
    """``count`` Schedules every 60 s, fire times spread over the minute, pods really run.

    After one minute to reach steady state, one interval is measured: every
    Schedule fires once in it and, in steady state, as many runs start and end as
    there are Schedules, so the operator's requests and CPU over it are per run.
    """
    every = 60
    start = int(time.time()) - every
    parallel(
        count,
        concurrency,
        lambda i: kube.create(
            SCHEDULES,
            interval_schedule(f"r-{i}", "runs", every, start + i * every // count),
            OPERATOR_NAMESPACE,
        ),
    )
    wait_group_active(kube, "runs", count, 600)
    time.sleep(every)
    window_start = math.ceil(time.time()) + 1
    moves: dict[str, list[tuple[float, str]]] = {}
    version = kube.listing(SCHEDULES, OPERATOR_NAMESPACE)["metadata"]["resourceVersion"]
    watcher = threading.Thread(
        target=next_run_moves,
        args=(kube, version, "r-", window_start + every + LATENESS_GRACE_SECONDS, moves),
        daemon=True,
    )
    watcher.start()
    while time.time() < window_start:
        time.sleep(0.05)
    requests_before = api_requests(metrics_url)
    _, cpu_before = process_usage(operator.pid)
    jobs = fire_lateness(
        kube,
        "r-",
        count,
        every,
        grace=LATENESS_GRACE_SECONDS,
        window_start=window_start,
        await_complete=False,
    )
    # The interval is over once fire_lateness has its Jobs; wait for its end.
    while time.time() < window_start + every:
        time.sleep(0.05)
    requests = api_requests(metrics_url) - requests_before
    _, cpu_after = process_usage(operator.pid)
    watcher.join()
    next_run = []
    for name, seen in moves.items():
        index = int(name.removeprefix("r-"))
        fire = start + index * every // count
        while fire < window_start:
            fire += every
        if fire >= window_start + every:
            continue
        moved = [arrived for arrived, text in seen if unix_seconds(text) > fire and arrived >= fire]
        if moved:
            next_run.append(min(moved) - fire)
    return Runs(count, requests, cpu_after - cpu_before, jobs, sorted(next_run))


def run_rows(runs: Runs) -> list[tuple[str, str, str]]:
    label = f"{runs.count} Schedules every 60 s, pods run"
    # Per run started in the interval: all of them in steady state, fewer when the
    # node cannot run that many pods a minute (then the late runs of the interval
    # before share the figures).
    started = max(1, len(runs.jobs.seconds))
    rows = [
        (
            f"{label}: operator API requests per run",
            f"{runs.requests / started:.2f}",
            f"{runs.requests:.0f} in one interval",
        ),
        (
            f"{label}: operator CPU per run",
            f"{runs.cpu_seconds / started * 1000:.1f} ms",
            f"{runs.cpu_seconds / 60 * 100:.1f}% of a core",
        ),
        (f"{label}: Jobs started in the interval", f"{len(runs.jobs.seconds)}/{runs.count}", ""),
    ]
    if runs.jobs.seconds:
        rows.append(
            (
                f"{label}: fire time -> Job ADDED, p50 / p99",
                f"{percentile(runs.jobs.seconds, 0.5) * 1000:.0f} ms",
                f"{percentile(runs.jobs.seconds, 0.99) * 1000:.0f} ms",
            )
        )
    if runs.next_run:
        rows.append(
            (
                f"{label}: fire time -> nextRunTime moved on, p50 / p99",
                f"{percentile(runs.next_run, 0.5) * 1000:.0f} ms",
                f"{percentile(runs.next_run, 0.99) * 1000:.0f} ms "
                f"({len(runs.next_run)}/{runs.count} seen)",
            )
        )
    return rows


def scale_rows(
    args: argparse.Namespace, kube: Kube, directory: Path, kubeconfig: Path
) -> list[tuple[str, str, str]]:
    """``--scale``: one operator with ``--scale-count`` Schedules (cron ones: a CronJob each)."""
    total: int = args.scale_count
    rest = total - SCALE_FIRST
    concurrency: int = args.concurrency
    quiet: float = args.scale_quiet_seconds
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    log_path = directory / "operator.log"
    operator = start_operator(kubeconfig, log_path, metrics_port, concurrency)
    try:
        wait_metric(metrics_url, "cronfleet_api_requests_total", 0, 60)
        # One Schedule first: its CronJob and status are what the floor writes.
        kube.create(SCHEDULES, schedule("warm-up"), OPERATOR_NAMESPACE)
        wait_all_active(kube, OPERATOR_NAMESPACE, 1, 60)
        writes = operator_writes(kube, "warm-up")
        # The operator watches only its own namespace: the floor's writes cost it nothing.
        # A few first, unmeasured: the operator's bursts also meet a warmed-up server.
        parallel(concurrency * 10, concurrency, lambda i: floor_item(kube, f"w-{i}", writes))
        floor_first = parallel(
            SCALE_FIRST, concurrency, lambda i: floor_item(kube, f"f-{i}", writes)
        )
        floor_rest = parallel(
            rest, concurrency, lambda i: floor_item(kube, f"f-{SCALE_FIRST + i}", writes)
        )
        CounterWatch(metrics_url).wait_still(quiet, 300)
        first = create_at_once(kube, operator, metrics_url, 0, SCALE_FIRST, concurrency, quiet)
        then = (
            create_at_once(kube, operator, metrics_url, SCALE_FIRST, rest, concurrency, quiet)
            if rest
            else None
        )
        _, cpu_before_idle = process_usage(operator.pid)
        requests_before_idle = api_requests(metrics_url)
        time.sleep(args.idle_seconds)
        idle_requests = api_requests(metrics_url) - requests_before_idle
        rss_idle, cpu_after_idle = process_usage(operator.pid)
    finally:
        operator.terminate()
        operator.wait(30)

    # The restart: a new operator process, every Schedule and CronJob already there.
    operator = start_operator(kubeconfig, log_path, metrics_port, concurrency)
    try:
        began = time.monotonic()
        judged = wait_metric(metrics_url, "cronfleet_schedules_reconciled", 1 + total, 600)
        restart_seconds = judged - began
        restart_writes = metric(metrics_url, "cronfleet_api_writes_total")
        restart_requests = api_requests(metrics_url)
        restart_rss, restart_cpu = process_usage(operator.pid)
        runs = (
            measure_runs(kube, operator, metrics_url, args.scale_runs, concurrency)
            if args.scale_runs
            else None
        )
    finally:
        operator.terminate()
        operator.wait(30)

    def creation_rows(created: Creation, of: int, floor: float) -> list[tuple[str, str, str]]:
        label = f"{created.count} Schedules at once ({of} in all)"
        return [
            (f"{label} -> all Active", f"{created.active_seconds:.1f} s", ""),
            (
                f"{label} -> all Active, requests over",
                f"{created.settled_seconds:.1f} s",
                f"{created.settled_seconds / floor:.2f}x floor",
            ),
            (
                f"  floor: bare client, same writes, {concurrency} threads",
                f"{floor:.1f} s",
                "1.00x",
            ),
            (
                f"{label}: operator API requests",
                f"{created.requests:.0f}",
                f"{created.requests / created.count:.2f} per Schedule",
            ),
            (
                f"{label}: operator CPU",
                f"{created.cpu_seconds:.1f} s",
                f"{created.cpu_seconds / created.count * 1000:.1f} ms per Schedule",
            ),
            (f"operator RSS with {of} Schedules", f"{created.rss_mib:.0f} MiB", ""),
        ]

    return [
        *creation_rows(first, SCALE_FIRST, floor_first),
        *(creation_rows(then, total, floor_rest) if then is not None else []),
        (
            f"operator RSS with {total} Schedules after {args.idle_seconds} s idle",
            f"{rss_idle:.0f} MiB",
            f"{(rss_idle - first.rss_mib) / rest * 1024:.1f} KiB per Schedule past {SCALE_FIRST}"
            if rest
            else "",
        ),
        (
            f"API requests while idle ({total} Schedules, {args.idle_seconds} s)",
            f"{idle_requests:.0f}",
            "",
        ),
        (
            f"operator CPU while idle ({total} Schedules, {args.idle_seconds} s)",
            f"{cpu_after_idle - cpu_before_idle:.2f} s",
            f"{(cpu_after_idle - cpu_before_idle) / args.idle_seconds * 100:.2f}% of a core",
        ),
        (f"restart with {total} Schedules -> every one judged", f"{restart_seconds:.1f} s", ""),
        ("restart: API writes until then", f"{restart_writes:.0f}", ""),
        ("restart: API requests until then", f"{restart_requests:.0f}", ""),
        ("restart: operator CPU until then", f"{restart_cpu:.1f} s", ""),
        ("restart: operator RSS then", f"{restart_rss:.0f} MiB", ""),
        *(run_rows(runs) if runs is not None else []),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--bulk", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--idle-seconds", type=int, default=60)
    parser.add_argument("--retry-samples", type=int, default=20)
    parser.add_argument(
        "--interval-schedules",
        type=int,
        # Each run is a local process of ~0.4 s CPU: two cores cannot start 1,000 a minute.
        default=100,
        help="(g) Schedules firing at --interval, their fire times spread across it",
    )
    parser.add_argument("--interval", type=int, default=60, help="(g) their every, in seconds")
    parser.add_argument(
        "--unrun-schedules",
        type=int,
        default=1000,
        help="(g') Schedules firing at --interval with the node agent stopped (pods not run)",
    )
    parser.add_argument(
        "--idle-interval-schedules",
        type=int,
        default=1000,
        help="(h) every: 1h Schedules, measured for --idle-seconds with no fire time",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="instead of the set above: --scale-count Schedules on one operator (creation, "
        "requests, RSS and CPU at 1,000 and at the count, idle, restart)",
    )
    parser.add_argument("--scale-count", type=int, default=10_000)
    parser.add_argument(
        "--scale-runs",
        type=int,
        default=300,
        help="--scale: then this many every-minute Schedules whose pods run (0: none)",
    )
    parser.add_argument(
        "--scale-quiet-seconds",
        type=int,
        default=10,
        help="--scale: the creation tail has ended when no request was sent for this long",
    )
    args = parser.parse_args()
    if args.scale and args.scale_count < SCALE_FIRST:
        parser.error(f"--scale-count must be at least {SCALE_FIRST}")
    if args.interval < 10:
        parser.error("--interval must be at least 10 (the shortest every)")

    binaries = ensure_binaries()
    directory = Path(tempfile.mkdtemp(prefix="cronfleet-bench-"))
    plane = ControlPlane(directory=directory, binaries=binaries)
    start_seconds = plane.start()
    kube = Kube.from_kubeconfig(plane.kubeconfig)
    kubectl = [str(binaries.kubectl), "--kubeconfig", str(plane.kubeconfig)]
    subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", str(REPO_ROOT / "crds")],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*kubectl, "wait", "--for=condition=Established", "crd/schedules.cronfleet.io"],
        check=True,
        capture_output=True,
    )
    for namespace in (OPERATOR_NAMESPACE, FLOOR_NAMESPACE):
        kube.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
    rows: list[tuple[str, str, str]] = [("control-plane start", f"{start_seconds:.1f} s", "")]
    if args.scale:
        try:
            rows += scale_rows(args, kube, directory, plane.kubeconfig)
        except ApiError as error:
            raise SystemExit(f"benchmark failed: {error}") from error
        finally:
            plane.stop()
        print_table(rows)
        return
    try:
        log_path = directory / "operator.log"
        metrics_port = free_port()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        env = dict(
            os.environ,
            KUBECONFIG=str(plane.kubeconfig),
            CRONFLEET_WORKERS=str(args.concurrency),
            CRONFLEET_METRICS_PORT=str(metrics_port),
        )
        with log_path.open("ab") as log:
            operator = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "cronfleet-operator"),
                    "--namespace",
                    OPERATOR_NAMESPACE,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            # (a) Latency of one Schedule, one at a time.
            kube.create(SCHEDULES, schedule("warm-up"), OPERATOR_NAMESPACE)
            wait_all_active(kube, OPERATOR_NAMESPACE, 1, 60)
            # (c) The floor: the operator's writes for the warm-up Schedule, made
            # by a bare client for as many Schedules (in a namespace the operator
            # does not watch).
            writes = operator_writes(kube, "warm-up")
            floor = parallel(
                args.bulk, args.concurrency, lambda i: floor_item(kube, f"f-{i}", writes)
            )
            latencies = []
            for index in range(args.latency_samples):
                name = f"l-{index}"
                began = time.monotonic()
                kube.create(SCHEDULES, schedule(name), OPERATOR_NAMESPACE)
                while True:
                    status = kube.get(SCHEDULES, name, OPERATOR_NAMESPACE).get("status") or {}
                    if status.get("phase") == "Active":
                        break
                    time.sleep(0.005)
                latencies.append(time.monotonic() - began)
                assert kube.get_or_none(CRONJOBS, name, OPERATOR_NAMESPACE) is not None
            latencies.sort()
            p50 = statistics.median(latencies) * 1000
            p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000

            # (b) A thousand at once.
            existing = args.latency_samples + 1
            began = time.monotonic()
            parallel(
                args.bulk,
                args.concurrency,
                lambda i: kube.create(SCHEDULES, schedule(f"b-{i}"), OPERATOR_NAMESPACE),
            )
            done = wait_all_active(kube, OPERATOR_NAMESPACE, existing + args.bulk, 600)
            bulk = done - began
            rss_after, cpu_after = process_usage(operator.pid)
            requests_before = api_requests(metrics_url)
            time.sleep(args.idle_seconds)
            rss_idle, cpu_idle = process_usage(operator.pid)
            idle_requests = api_requests(metrics_url) - requests_before
            schedules = existing + args.bulk
            per_schedule_hour = idle_requests / schedules * 3600 / args.idle_seconds

            # (e) A failure seen -> its retry Job created, with zero backoff.
            retries = sorted(retry_latencies(kube, args.retry_samples))

            # (h) Interval Schedules between fire times: every: 1h, fire times spread
            # over the hour but none in the next IDLE_GAP_SECONDS, the rest of the run.
            hourly = args.idle_interval_schedules
            now = int(time.time())
            first_fire = now + IDLE_GAP_SECONDS
            parallel(
                hourly,
                args.concurrency,
                lambda i: kube.create(
                    SCHEDULES,
                    interval_schedule(
                        f"h-{i}",
                        "hourly",
                        3600,
                        first_fire - 3600 + i * (3600 - IDLE_GAP_SECONDS) // hourly,
                    ),
                    OPERATOR_NAMESPACE,
                ),
            )
            wait_group_active(kube, "hourly", hourly, 600)
            wait_counter_still(metrics_url, 3, 30)
            requests_before = api_requests(metrics_url)
            time.sleep(args.idle_seconds)
            hourly_requests = api_requests(metrics_url) - requests_before
            hourly_per_hour = hourly_requests / hourly * 3600 / args.idle_seconds

            # (g) Runs the operator starts itself: fire times spread over the interval,
            # in steady state (the window opens once all of them are Active).
            every = args.interval
            count = args.interval_schedules
            start = int(time.time()) - every
            parallel(
                count,
                args.concurrency,
                lambda i: kube.create(
                    SCHEDULES,
                    interval_schedule(f"g-{i}", "firing", every, start + i * every // count),
                    OPERATOR_NAMESPACE,
                ),
            )
            wait_group_active(kube, "firing", count, 600)
            _, cpu_before_fires = process_usage(operator.pid)
            fires = fire_lateness(kube, "g-", count, every, grace=LATENESS_GRACE_SECONDS)
            _, cpu_after_fires = process_usage(operator.pid)

            # (g') The operator's part alone, at 1,000 Schedules a minute: the node agent
            # stops, so the Job controller's pods stay Pending and nothing runs. (g)'s
            # Schedules are suspended first (nothing would run their next Jobs). Under
            # concurrencyPolicy Forbid a Job still Pending skips the next fire time, so
            # no fire time may fall before the interval: every Schedule's first fire time
            # is its startTime, spread over the interval, which opens once all of them
            # are Active (the lead is from (b)'s time per Schedule).
            parallel(
                count,
                args.concurrency,
                lambda i: kube.patch(
                    SCHEDULES, f"g-{i}", {"spec": {"suspend": True}}, OPERATOR_NAMESPACE
                ),
            )
            wait_group_active(kube, "firing", count, 120, phase="Paused")
            plane.stop_component("node-agent")
            unrun = args.unrun_schedules
            lead = UNRUN_LEAD_SECONDS + UNRUN_LEAD_FACTOR * unrun * bulk / args.bulk
            unrun_start = math.ceil(time.time() + lead)
            parallel(
                unrun,
                args.concurrency,
                lambda i: kube.create(
                    SCHEDULES,
                    interval_schedule(f"u-{i}", "unrun", every, unrun_start + i * every // unrun),
                    OPERATOR_NAMESPACE,
                ),
            )
            wait_group_active(kube, "unrun", unrun, 600)
            wait_counter_still(metrics_url, 3, max(1.0, unrun_start - 1 - time.time()))
            if time.time() >= unrun_start - 1:
                raise SystemExit(
                    f"(g')'s {unrun} Schedules were not Active and settled within the "
                    f"{lead:.0f} s before their first fire time"
                )
            requests_before_unrun = api_requests(metrics_url)
            _, cpu_before_unrun = process_usage(operator.pid)
            unrun_fires = fire_lateness(
                kube,
                "u-",
                unrun,
                every,
                grace=LATENESS_GRACE_SECONDS,
                window_start=unrun_start,
                await_complete=False,
            )
            _, cpu_after_unrun = process_usage(operator.pid)
            unrun_requests = api_requests(metrics_url) - requests_before_unrun
            if time.time() >= first_fire:
                raise SystemExit(
                    f"the run outlasted (h)'s {IDLE_GAP_SECONDS} s without a fire time; "
                    "its every: 1h Schedules started firing"
                )
        finally:
            operator.terminate()
            operator.wait(30)
    except ApiError as error:
        raise SystemExit(f"benchmark failed: {error}") from error
    finally:
        plane.stop()

    rows += [
        ("(a) create -> CronJob + status, p50", f"{p50:.0f} ms", ""),
        ("(a) create -> CronJob + status, p95", f"{p95:.0f} ms", ""),
        (
            f"(b) {args.bulk} Schedules at once -> all Active",
            f"{bulk:.1f} s",
            f"{bulk / floor:.2f}x floor",
        ),
        (
            f"(c) floor: bare client, same writes, {args.concurrency} threads",
            f"{floor:.1f} s",
            "1.00x",
        ),
        ("(d) operator RSS after (b)", f"{rss_after:.0f} MiB", ""),
        ("(d) operator CPU after (b)", f"{cpu_after:.1f} s", ""),
        (f"(d) operator RSS after {args.idle_seconds} s idle", f"{rss_idle:.0f} MiB", ""),
        (
            f"(d) operator CPU during {args.idle_seconds} s idle",
            f"{cpu_idle - cpu_after:.2f} s",
            "",
        ),
        (
            f"(e) failed Job -> retry Job, zero backoff, p50 of {len(retries)}",
            f"{statistics.median(retries) * 1000:.0f} ms",
            "",
        ),
        ("(e) failed Job -> retry Job, zero backoff, max", f"{retries[-1] * 1000:.0f} ms", ""),
        (
            f"(f) API requests while idle ({schedules} Schedules, {args.idle_seconds} s)",
            f"{idle_requests:.0f}",
            "",
        ),
        ("(f) API requests per Schedule per hour, idle", f"{per_schedule_hour:.3f}", ""),
    ]
    lateness = fires.seconds
    if lateness:
        rows += [
            (
                f"(g) fire time -> Job ADDED, p50 ({every} s interval)",
                f"{percentile(lateness, 0.5) * 1000:.0f} ms",
                "",
            ),
            (
                f"(g) fire time -> Job ADDED, p99 ({every} s interval)",
                f"{percentile(lateness, 0.99) * 1000:.0f} ms",
                f"{percentile(lateness, 0.99):.2f}x 1 s target",
            ),
            ("(g) fire time -> Job ADDED, max", f"{lateness[-1] * 1000:.0f} ms", ""),
        ]
    rows += [
        (
            "(g) Jobs started for one interval's fire times",
            f"{len(lateness)}/{fires.expected}",
            "",
        ),
        (
            f"(g) of those, Complete {LATENESS_GRACE_SECONDS} s after the interval",
            f"{fires.complete}",
            "",
        ),
        (
            "(g) operator CPU during the interval",
            f"{cpu_after_fires - cpu_before_fires:.1f} s",
            "",
        ),
    ]
    unrun_lateness = unrun_fires.seconds
    if unrun_lateness:
        rows += [
            (
                f"(g') fire time -> Job ADDED, p50, {unrun} Schedules, pods not run",
                f"{percentile(unrun_lateness, 0.5) * 1000:.0f} ms",
                "",
            ),
            (
                f"(g') fire time -> Job ADDED, p99, {unrun} Schedules, pods not run",
                f"{percentile(unrun_lateness, 0.99) * 1000:.0f} ms",
                f"{percentile(unrun_lateness, 0.99):.2f}x 1 s target",
            ),
            (
                f"(g') fire time -> Job ADDED, max, {unrun} Schedules, pods not run",
                f"{unrun_lateness[-1] * 1000:.0f} ms",
                "",
            ),
        ]
    rows += [
        (
            f"(g') Jobs started for one interval's fire times ({every} s)",
            f"{len(unrun_lateness)}/{unrun_fires.expected}",
            "",
        ),
        (
            "(g') operator CPU during the interval",
            f"{cpu_after_unrun - cpu_before_unrun:.1f} s",
            "",
        ),
        (
            "(g') operator API requests during the interval",
            f"{unrun_requests:.0f}",
            f"{unrun_requests / max(1, len(unrun_lateness)):.1f} per Job",
        ),
        (
            f"(h) API requests between fire times ({hourly} every-1h, {args.idle_seconds} s)",
            f"{hourly_requests:.0f}",
            "",
        ),
        ("(h) API requests per Schedule per hour, between fires", f"{hourly_per_hour:.3f}", ""),
    ]
    print_table(rows)


def print_table(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(row[0]) for row in rows)
    print()
    print(f"{'benchmark'.ljust(width)}  {'value':>10}  ratio")
    print(f"{'-' * width}  {'-' * 10}  -----")
    for label, value, ratio in rows:
        print(f"{label.ljust(width)}  {value:>10}  {ratio}")


if __name__ == "__main__":
    main()
