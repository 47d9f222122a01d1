"""`make bench`: the operator's reconcile speed and cost on the real local control plane.

Prints one table. Ratios compare the operator with a floor measured in the same
run: a bare client doing the same API writes with the same concurrency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cronfleet_devcluster.binaries import ensure_binaries
from cronfleet_devcluster.controlplane import ControlPlane, free_port
from cronfleet_devcluster.kube import (
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


def schedule(name: str) -> Object:
    return {
        "apiVersion": "cronfleet.io/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name},
        # Once a year: the benchmark measures reconciling, not runs (and a run
        # the clock happens to start calls loopback, looking up no name).
        "spec": {"cron": "0 0 1 1 *", "task": "http", "params": {"url": "http://127.0.0.1:9/"}},
    }


def cronjob(name: str) -> Object:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 0 1 1 *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "runner", "image": "cronfleet-runner:x"}],
                        }
                    }
                }
            },
        },
    }


def api_requests(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("cronfleet_api_requests_total "):
                return float(line.split()[1])
    raise RuntimeError("cronfleet_api_requests_total is not exported")


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


def wait_all_active(kube: Kube, namespace: str, count: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        items = kube.items(SCHEDULES, namespace)
        active = sum(1 for item in items if (item.get("status") or {}).get("phase") == "Active")
        if active >= count:
            cronjobs = len(kube.items(CRONJOBS, namespace))
            if cronjobs >= count:
                return time.monotonic()
        time.sleep(0.25)
    raise RuntimeError(f"only some of {count} Schedules became Active in {timeout}s")


def parallel(count: int, concurrency: int, work: Callable[[int], Any]) -> float:
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(work, range(count)))
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--bulk", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--idle-seconds", type=int, default=60)
    parser.add_argument("--retry-samples", type=int, default=20)
    args = parser.parse_args()

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
    try:
        # (c) The floor: what the operator's writes cost when a bare client makes
        # them: the user's Schedule create, a CronJob create, a status patch.
        def floor_item(index: int) -> None:
            name = f"f-{index}"
            kube.create(SCHEDULES, schedule(name), FLOOR_NAMESPACE)
            kube.create(CRONJOBS, cronjob(name), FLOOR_NAMESPACE)
            kube.patch(
                SCHEDULES, name, {"status": {"phase": "Active"}}, FLOOR_NAMESPACE, sub="status"
            )

        floor = parallel(args.bulk, args.concurrency, floor_item)

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
    width = max(len(row[0]) for row in rows)
    print()
    print(f"{'benchmark'.ljust(width)}  {'value':>10}  ratio")
    print(f"{'-' * width}  {'-' * 10}  -----")
    for label, value, ratio in rows:
        print(f"{label.ljust(width)}  {value:>10}  {ratio}")


if __name__ == "__main__":
    main()
