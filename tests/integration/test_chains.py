"""Run B after A (spec.after), with tasks really run: one downstream run per upstream
run cycle that ends as `on` asks, the upstream's Job, result and data in the
downstream's environment, chains, cycles refused or marked Invalid, upstreams that
appear later, and exactly one downstream run across operator restarts."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

import pytest

from cronfleet.naming import cronjob_name
from cronfleet.runs import manual_job_name
from cronfleet_devcluster.kube import JOBS, SCHEDULES, ApiError, Object
from cronfleet_devcluster.testing import eventually
from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.jobs import job_condition
from tests.integration.test_cadences import cadence_schedule
from tests.integration.test_runs import finished_runs, history, run_now
from tests.integration.test_schedules import events_for, status_of, wait_phase

# A downstream's own task: it exits 1 unless every variable it is given as a JSON
# object in argv[1] has exactly that value, so its run succeeding proves them.
CHECK_ENV = (
    "import json, os, sys\n"
    "expected = json.loads(sys.argv[1])\n"
    "seen = {name: os.environ.get(name) for name in expected}\n"
    "print(json.dumps(seen, sort_keys=True))\n"
    "sys.exit(0 if seen == expected else 1)\n"
)
# Fails its first attempt and succeeds on the retry (no `$(` in it: Kubernetes
# would read that as a variable reference).
FAIL_FIRST_ATTEMPT = "import os, sys; sys.exit(1 if os.environ['CRONFLEET_ATTEMPT'] == '0' else 0)"
ONE_QUICK_RETRY: dict[str, Any] = {
    "maxRetries": 1,
    "backoff": {"initialDelaySeconds": 1, "maxDelaySeconds": 1},
}


def after(*names: str, on: str = "Succeeded") -> list[Object]:
    return [{"schedule": name, "on": on} for name in names]


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def jobs_of(cluster: Cluster, namespace: str, name: str) -> list[Object]:
    return cluster.kube.items(JOBS, namespace, label_selector=f"cronfleet.io/schedule={name}")


def after_jobs(cluster: Cluster, namespace: str, name: str) -> list[Object]:
    return [
        job
        for job in jobs_of(cluster, namespace, name)
        if job["metadata"]["annotations"].get("cronfleet.io/trigger") == "After"
    ]


def env_of(job: Object) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "") for item in container.get("env") or []}


def upstream_env(job: Object) -> dict[str, str]:
    return {name: value for name, value in env_of(job).items() if "UPSTREAM" in name}


def after_runs(cluster: Cluster, namespace: str, name: str) -> list[Object]:
    return [run for run in history(cluster, namespace, name) if run["trigger"] == "After"]


def finished_after_runs(
    cluster: Cluster, namespace: str, name: str, count: int = 1, timeout: float = 60
) -> list[Object]:
    def probe() -> list[Object] | None:
        done = [run for run in after_runs(cluster, namespace, name) if run.get("result")]
        return done if len(done) >= count else None

    return eventually(
        probe, timeout=timeout, interval=0.5, what=f"{count} finished After runs of {name}"
    )


def condition(status: Object, kind: str) -> Object | None:
    conditions: list[Object] = status.get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), None)


def upstream_entry(status: Object, name: str) -> Object | None:
    entries: list[Object] = status.get("upstreams") or []
    return next((entry for entry in entries if entry["schedule"] == name), None)


def wait_linked(
    cluster: Cluster, namespace: str, upstream: str, downstream: str, timeout: float = 30
) -> None:
    """Until the downstream follows the upstream and the upstream lists the downstream."""

    def probe() -> bool:
        entry = upstream_entry(status_of(cluster, namespace, downstream), upstream)
        listed = status_of(cluster, namespace, upstream).get("downstreams") or []
        return bool(entry and entry["found"] and downstream in listed)

    eventually(probe, timeout=timeout, what=f"{downstream} following {upstream}")


def test_a_success_runs_the_downstream_once_with_the_upstream_in_its_environment(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    upstream_job = manual_job_name(cronjob_name("ingest"), "first")
    expected = {
        "CRONFLEET_TRIGGER": "After",
        "CRONFLEET_UPSTREAM": f"{namespace}/ingest",
        "CRONFLEET_UPSTREAM_RUN": upstream_job,
        "CRONFLEET_UPSTREAM_RESULT": "Succeeded",
        # The python task's returned value is its data, as {"return": ...}.
        "CRONFLEET_UPSTREAM_DATA": '{"return":{"rows":42}}',
    }
    ingest: dict[str, Any] = {
        "task": "python",
        "params": {"callable": "json:loads", "kwargs": {"s": '{"rows": 42}'}},
    }
    report: dict[str, Any] = {
        "after": after("ingest"),
        "task": "command",
        "params": {"argv": ["python", "-c", CHECK_ENV, json.dumps(expected)]},
        "retry": {"maxRetries": 0},
    }
    cluster.kube.create(SCHEDULES, cadence_schedule("ingest", **ingest), namespace)
    cluster.kube.create(SCHEDULES, cadence_schedule("report", **report), namespace)
    wait_phase(cluster, namespace, "ingest", "Active")
    wait_phase(cluster, namespace, "report", "Active")
    wait_linked(cluster, namespace, "ingest", "report")
    assert status_of(cluster, namespace, "ingest")["downstreams"] == ["report"]

    run_now(cluster, namespace, "ingest", "first")
    [run] = finished_after_runs(cluster, namespace, "report")
    assert run["result"] == "Succeeded", run.get("message")
    assert (run["upstream"], run["upstreamRun"]) == (f"{namespace}/ingest", upstream_job)
    [upstream_run] = finished_runs(cluster, namespace, "ingest", 1)
    assert (upstream_run["job"], upstream_run["result"]) == (upstream_job, "Succeeded")

    [job] = after_jobs(cluster, namespace, "report")
    assert run["job"] == job["metadata"]["name"]
    annotations = job["metadata"]["annotations"]
    assert annotations["cronfleet.io/upstream"] == f"{namespace}/ingest"
    assert annotations["cronfleet.io/upstream-run"] == upstream_job
    assert annotations["cronfleet.io/upstream-result"] == "Succeeded"
    assert {**upstream_env(job), "CRONFLEET_TRIGGER": env_of(job)["CRONFLEET_TRIGGER"]} == expected

    status = status_of(cluster, namespace, "report")
    entry = upstream_entry(status, "ingest")
    assert entry is not None
    assert (entry["on"], entry["found"], entry["handledCycle"]) == ("Succeeded", True, 1)
    assert (entry["lastRun"], entry["lastResult"]) == (upstream_job, "Succeeded")
    found = condition(status, "UpstreamsFound")
    assert found is not None and (found["status"], found["reason"]) == ("True", "AllFound")
    cycles = status_of(cluster, namespace, "ingest")["cycles"]
    assert [(c["number"], c["run"], c["result"], c["trigger"]) for c in cycles] == [
        (1, upstream_job, "Succeeded", "Manual")
    ]
    assert cycles[0]["finishedTime"]

    def events_until_success() -> list[Object] | None:
        events = events_for(cluster, namespace, "report")
        return events if "RunSucceeded" in [e["reason"] for e in events] else None

    events = eventually(events_until_success, timeout=15, what="the RunSucceeded event of report")
    queued = [e for e in events if e["reason"] == "AfterQueued"]
    assert len(queued) == 1 and queued[0]["type"] == "Normal"
    assert "RunStarted" in [e["reason"] for e in events]

    wide = cluster.kubectl("get", "schedules", "-n", namespace, "-o", "wide").stdout
    header, *rows = wide.splitlines()
    assert "AFTER" in header.split()
    [report_row] = [row for row in rows if row.split()[0] == "report"]
    assert "ingest" in report_row.split()[1:]

    time.sleep(4)  # nothing more happens
    assert len(after_jobs(cluster, namespace, "report")) == 1
    assert len(after_runs(cluster, namespace, "report")) == 1


def test_a_cycle_that_succeeds_on_its_retry_runs_the_downstream_once_after_it(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    flaky: dict[str, Any] = {
        "task": "command",
        "params": {"argv": ["python", "-c", FAIL_FIRST_ATTEMPT]},
        "retry": ONE_QUICK_RETRY,
    }
    cluster.kube.create(SCHEDULES, cadence_schedule("flaky", **flaky), namespace)
    cluster.kube.create(
        SCHEDULES, cadence_schedule("publish", after=after("flaky", on="Succeeded")), namespace
    )
    wait_phase(cluster, namespace, "flaky", "Active")
    wait_linked(cluster, namespace, "flaky", "publish")

    run_now(cluster, namespace, "flaky", "go")
    [run] = finished_after_runs(cluster, namespace, "publish")
    upstream_runs = list(reversed(finished_runs(cluster, namespace, "flaky", 2)))  # oldest first
    assert [(r["trigger"], r["attempt"], r["result"]) for r in upstream_runs] == [
        ("Manual", 0, "Failed"),
        ("Retry", 1, "Succeeded"),
    ]
    retry = upstream_runs[1]
    assert run["result"] == "Succeeded"
    assert run["upstreamRun"] == retry["job"]

    [job] = after_jobs(cluster, namespace, "publish")
    # Started by the cycle's end, not by its failed first attempt.
    assert ts(job["metadata"]["creationTimestamp"]) >= ts(retry["completionTime"])
    assert upstream_env(job) == {
        "CRONFLEET_UPSTREAM": f"{namespace}/flaky",
        "CRONFLEET_UPSTREAM_RUN": retry["job"],
        "CRONFLEET_UPSTREAM_RESULT": "Succeeded",
        # The command task's data, of the successful retry.
        "CRONFLEET_UPSTREAM_DATA": '{"exitCode":0}',
    }
    cycles = status_of(cluster, namespace, "flaky")["cycles"]
    assert [(c["number"], c["run"], c["result"], c["trigger"]) for c in cycles] == [
        (1, retry["job"], "Succeeded", "Manual")
    ]

    time.sleep(3)  # nothing more happens
    assert len(after_jobs(cluster, namespace, "publish")) == 1


def test_exhausted_retries_run_the_on_failed_downstream_and_not_the_on_succeeded_one(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    doomed: dict[str, Any] = {
        "task": "sleep",
        "params": {"seconds": 0, "exitCode": 1, "message": "source unreachable"},
        "retry": ONE_QUICK_RETRY,
    }
    cluster.kube.create(SCHEDULES, cadence_schedule("doomed", **doomed), namespace)
    cluster.kube.create(
        SCHEDULES, cadence_schedule("escalate", after=after("doomed", on="Failed")), namespace
    )
    cluster.kube.create(
        SCHEDULES, cadence_schedule("report", after=after("doomed", on="Succeeded")), namespace
    )
    wait_phase(cluster, namespace, "doomed", "Active")
    wait_linked(cluster, namespace, "doomed", "escalate")
    wait_linked(cluster, namespace, "doomed", "report")
    assert status_of(cluster, namespace, "doomed")["downstreams"] == ["escalate", "report"]

    run_now(cluster, namespace, "doomed", "go")
    [run] = finished_after_runs(cluster, namespace, "escalate")
    upstream_runs = list(reversed(finished_runs(cluster, namespace, "doomed", 2)))
    assert [(r["trigger"], r["result"]) for r in upstream_runs] == [
        ("Manual", "Failed"),
        ("Retry", "Failed"),
    ]
    last_try = upstream_runs[1]["job"]
    assert run["result"] == "Succeeded" and run["upstreamRun"] == last_try
    assert status_of(cluster, namespace, "doomed")["phase"] == "Failed"

    [job] = after_jobs(cluster, namespace, "escalate")
    assert job["metadata"]["annotations"]["cronfleet.io/upstream-result"] == "Failed"
    assert upstream_env(job) == {
        "CRONFLEET_UPSTREAM": f"{namespace}/doomed",
        "CRONFLEET_UPSTREAM_RUN": last_try,
        "CRONFLEET_UPSTREAM_RESULT": "Failed",
        "CRONFLEET_UPSTREAM_DATA": "null",  # the sleep task reports no data
    }
    entry = upstream_entry(status_of(cluster, namespace, "escalate"), "doomed")
    assert entry is not None
    assert (entry["on"], entry["lastRun"], entry["lastResult"]) == ("Failed", last_try, "Failed")
    cycles = status_of(cluster, namespace, "doomed")["cycles"]
    assert [(c["number"], c["run"], c["result"]) for c in cycles] == [(1, last_try, "Failed")]

    time.sleep(4)  # nothing more happens
    assert after_jobs(cluster, namespace, "report") == []
    assert history(cluster, namespace, "report") == []
    assert len(after_jobs(cluster, namespace, "escalate")) == 1


def test_a_chain_of_three_runs_in_order(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kube.create(SCHEDULES, cadence_schedule("extract"), namespace)
    cluster.kube.create(SCHEDULES, cadence_schedule("transform", after=after("extract")), namespace)
    cluster.kube.create(SCHEDULES, cadence_schedule("load", after=after("transform")), namespace)
    wait_phase(cluster, namespace, "extract", "Active")
    wait_linked(cluster, namespace, "extract", "transform")
    wait_linked(cluster, namespace, "transform", "load")

    run_now(cluster, namespace, "extract", "go")
    [loaded] = finished_after_runs(cluster, namespace, "load")
    [transformed] = finished_after_runs(cluster, namespace, "transform")
    [extracted] = finished_runs(cluster, namespace, "extract", 1)
    assert [run["result"] for run in (extracted, transformed, loaded)] == ["Succeeded"] * 3
    assert transformed["upstreamRun"] == extracted["job"]
    assert loaded["upstreamRun"] == transformed["job"]
    assert loaded["upstream"] == f"{namespace}/transform"
    # Timestamps have whole seconds: "after" allows the same second.
    assert ts(transformed["startTime"]) >= ts(extracted["completionTime"])
    assert ts(loaded["startTime"]) >= ts(transformed["completionTime"])
    assert status_of(cluster, namespace, "transform")["downstreams"] == ["load"]


def test_cycles_are_invalid_and_self_or_cross_namespace_references_are_refused(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    with pytest.raises(ApiError) as itself:
        cluster.kube.create(SCHEDULES, cadence_schedule("loop", after=after("loop")), namespace)
    assert itself.value.status == 422
    assert "after" in itself.value.message
    elsewhere = [{"schedule": "ingest", "namespace": "other"}]
    with pytest.raises(ApiError) as across:
        cluster.kube.create(SCHEDULES, cadence_schedule("remote", after=elsewhere), namespace)
    assert across.value.status == 422
    assert "namespace" in across.value.message

    cluster.kube.create(SCHEDULES, cadence_schedule("x", after=after("y")), namespace)
    cluster.kube.create(SCHEDULES, cadence_schedule("y", after=after("x")), namespace)
    for name in ("x", "y"):
        message = wait_phase(cluster, namespace, name, "Invalid")["message"]
        assert "cycle" in message, message
        assert re.search(r"\bx → y → x\b|\by → x → y\b", message), message

    # Breaking the cycle makes both valid again.
    cluster.kube.patch(SCHEDULES, "y", {"spec": {"after": None}}, namespace)
    wait_phase(cluster, namespace, "y", "Active", generation=2)
    wait_phase(cluster, namespace, "x", "Active")


def test_an_upstream_created_later_is_followed_from_then_on(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kube.create(SCHEDULES, cadence_schedule("waiting", after=after("later")), namespace)

    def not_found() -> Object | None:
        found = condition(status_of(cluster, namespace, "waiting"), "UpstreamsFound")
        return found if found and found["status"] == "False" else None

    missing = eventually(not_found, timeout=30, what="UpstreamsFound False")
    assert missing["reason"] == "UpstreamNotFound"
    assert "later" in missing["message"]
    entry = upstream_entry(status_of(cluster, namespace, "waiting"), "later")
    assert entry is not None and entry["found"] is False
    warnings = eventually(
        lambda: [
            event
            for event in events_for(cluster, namespace, "waiting")
            if event["reason"] == "UpstreamNotFound"
        ],
        timeout=15,
        what="the UpstreamNotFound event",
    )
    assert warnings[0]["type"] == "Warning" and "later" in warnings[0]["message"]

    cluster.kube.create(SCHEDULES, cadence_schedule("later"), namespace)
    wait_phase(cluster, namespace, "later", "Active")
    wait_linked(cluster, namespace, "later", "waiting")

    def all_found() -> Object | None:
        found = condition(status_of(cluster, namespace, "waiting"), "UpstreamsFound")
        return found if found and found["status"] == "True" else None

    assert eventually(all_found, timeout=15, what="UpstreamsFound True")["reason"] == "AllFound"

    run_now(cluster, namespace, "later", "go")
    [run] = finished_after_runs(cluster, namespace, "waiting")
    [upstream_run] = finished_runs(cluster, namespace, "later", 1)
    assert run["result"] == "Succeeded" and run["upstreamRun"] == upstream_run["job"]
    time.sleep(3)  # nothing more happens
    assert len(after_jobs(cluster, namespace, "waiting")) == 1


def test_an_operator_killed_before_the_downstream_exists_runs_it_exactly_once(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    operator.require_local()
    slow: dict[str, Any] = {"params": {"seconds": 3}}
    cluster.kube.create(SCHEDULES, cadence_schedule("ingest", **slow), namespace)
    cluster.kube.create(SCHEDULES, cadence_schedule("report", after=after("ingest")), namespace)
    wait_phase(cluster, namespace, "ingest", "Active")
    wait_linked(cluster, namespace, "ingest", "report")

    run_now(cluster, namespace, "ingest", "go")
    [upstream_job] = eventually(
        lambda: jobs_of(cluster, namespace, "ingest"),
        timeout=30,
        interval=0.05,
        what="the upstream's Job",
    )
    try:
        operator.kill()  # SIGKILL while the upstream runs: its end is not seen
        name = upstream_job["metadata"]["name"]
        eventually(
            lambda: job_condition(cluster.kube.get(JOBS, name, namespace), "Complete"),
            timeout=45,
            interval=0.5,
            what="the upstream's Job complete while the operator is down",
        )
        assert after_jobs(cluster, namespace, "report") == []
    finally:
        if operator.process is None:
            operator.start()

    [run] = finished_after_runs(cluster, namespace, "report")
    assert run["result"] == "Succeeded" and run["upstreamRun"] == name
    [job] = after_jobs(cluster, namespace, "report")
    assert job["metadata"]["annotations"]["cronfleet.io/upstream-run"] == name

    operator.restart()
    time.sleep(5)  # nothing more happens
    assert [j["metadata"]["name"] for j in after_jobs(cluster, namespace, "report")] == [
        job["metadata"]["name"]
    ]
    assert len(after_runs(cluster, namespace, "report")) == 1
    entry = upstream_entry(status_of(cluster, namespace, "report"), "ingest")
    assert entry is not None and (entry["handledCycle"], entry["lastRun"]) == (1, name)


def test_an_unquoted_on_key_in_a_manifest_applied_with_kubectl_is_understood(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    # YAML 1.1 (kubectl's reader) turns the key `on` into the boolean true.
    manifest = f"""
apiVersion: cronfleet.io/v1alpha1
kind: Schedule
metadata:
  name: escalate
  namespace: {namespace}
spec:
  after:
  - schedule: sync
    on: Failed
  task: sleep
  params: {{seconds: 0}}
"""
    cluster.kubectl("apply", "-f", "-", input=manifest)
    stored = cluster.kube.get(SCHEDULES, "escalate", namespace)["spec"]["after"]
    assert stored == [{"schedule": "sync", "true": "Failed"}]

    def followed() -> Object | None:
        entry = upstream_entry(status_of(cluster, namespace, "escalate"), "sync")
        return entry if entry is not None else None

    entry = eventually(followed, timeout=30, interval=0.5, what="escalate following sync")
    assert entry["on"] == "Failed" and entry["found"] is False
    both = manifest.replace("    on: Failed", "    on: Failed\n    'on': Succeeded")
    refused = cluster.kubectl("apply", "-f", "-", input=both, check=False)
    assert refused.returncode != 0 and "set `on` once" in refused.stderr
