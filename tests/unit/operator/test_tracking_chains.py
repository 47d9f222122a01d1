"""Run tracking for chains: upstream cycles recorded once, downstream runs started once."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from cronfleet.chains import UpstreamView, valid_cycles
from cronfleet.runs import after_job_name, retry_job_name
from cronfleet.tracking import Observations, track
from tests.unit.operator.test_tracking import CONFIG, NOW, job, schedule, spec


def summary_pod(data: dict[str, Any] | None, code: int = 0) -> dict[str, Any]:
    message = json.dumps({"result": "Succeeded", "message": "ok", "data": data})
    terminated = {"exitCode": code, "message": message, "finishedAt": "2026-11-24T09:59:30Z"}
    return {"status": {"containerStatuses": [{"state": {"terminated": terminated}}]}}


def test_a_cycle_ends_once_after_its_retries_with_the_last_run_and_its_data() -> None:
    policy = spec(retry={"maxRetries": 1, "backoff": {"initialDelaySeconds": 0}})
    seen = Observations(has_downstreams=True)
    first = job("sync-29000000", "Failed")
    failed = track(schedule(), policy, [first], {}, CONFIG, NOW, seen=seen)
    assert failed.updates["cycles"] == []  # a retry is booked: the cycle goes on
    assert [j["metadata"]["name"] for j in failed.create_jobs] == [
        retry_job_name("sync", "sync-29000000", 1)
    ]
    retry = job(
        retry_job_name("sync", "sync-29000000", 1),
        "Succeeded",
        trigger="Retry",
        attempt=1,
        origin="sync-29000000",
    )
    pods = {retry["metadata"]["name"]: [summary_pod({"rows": 42})]}
    seen = Observations(pods=pods, has_downstreams=True)
    done = track(schedule(failed.updates), policy, [first, retry], pods, CONFIG, NOW, seen=seen)
    [ended] = valid_cycles(done.updates["cycles"])
    assert ended.number == 1 and ended.result.value == "Succeeded"
    assert ended.run == retry_job_name("sync", "sync-29000000", 1)
    assert ended.trigger.value == "Scheduled" and ended.data == '{"rows":42}'
    again = track(schedule(done.updates), policy, [first, retry], pods, CONFIG, NOW, seen=seen)
    assert len(again.updates["cycles"]) == 1


def test_without_downstreams_no_data_is_kept() -> None:
    run = job("sync-29000000", "Succeeded")
    pods = {"sync-29000000": [summary_pod({"rows": 42})]}
    out = track(schedule(), spec(), [run], pods, CONFIG, NOW)
    [ended] = valid_cycles(out.updates["cycles"])
    assert ended.data is None


def test_exhausted_retries_end_the_cycle_failed() -> None:
    policy = spec(retry={"maxRetries": 0})
    out = track(schedule(), policy, [job("sync-29000000", "Failed")], {}, CONFIG, NOW)
    [ended] = valid_cycles(out.updates["cycles"])
    assert (ended.result.value, ended.run) == ("Failed", "sync-29000000")


def test_a_downstream_starts_one_after_run_per_upstream_cycle_with_its_facts() -> None:
    upstream_cycles = valid_cycles(
        [
            {
                "number": 3,
                "run": "ingest-29000000",
                "result": "Succeeded",
                "trigger": "Scheduled",
                "finishedTime": "2026-11-24T09:59:00Z",
                "data": '{"rows":42}',
            }
        ]
    )
    downstream = spec(cron=None, after=[{"schedule": "ingest"}])
    status = {"upstreams": [{"schedule": "ingest", "found": True, "uid": "u1", "handledCycle": 2}]}
    seen = Observations(upstreams={"ingest": UpstreamView(uid="u1", cycles=upstream_cycles)})
    out = track(schedule(status), downstream, [], {}, CONFIG, NOW, seen=seen)
    [created] = out.create_jobs
    assert created["metadata"]["name"] == after_job_name("sync", "ingest", "ingest-29000000")
    annotations = created["metadata"]["annotations"]
    assert annotations["cronfleet.io/trigger"] == "After"
    assert annotations["cronfleet.io/upstream"] == "acme/ingest"
    assert annotations["cronfleet.io/upstream-run"] == "ingest-29000000"
    env = {
        e["name"]: e.get("value")
        for e in created["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["CRONFLEET_TRIGGER"] == "After"
    assert env["CRONFLEET_UPSTREAM"] == "acme/ingest"
    assert env["CRONFLEET_UPSTREAM_RUN"] == "ingest-29000000"
    assert env["CRONFLEET_UPSTREAM_RESULT"] == "Succeeded"
    assert json.loads(env["CRONFLEET_UPSTREAM_DATA"]) == {"rows": 42}
    assert out.updates["upstreams"][0]["handledCycle"] == 3
    assert out.updates["queuedRuns"] == []
    # The Job is seen next: it enters the history with the upstream run that started it.
    after_run = dict(created, status={})
    after_run["metadata"] = {**created["metadata"], "creationTimestamp": "2026-11-24T10:00:00Z"}
    later = NOW + timedelta(seconds=1)
    seen_again = track(schedule(out.updates), downstream, [after_run], {}, CONFIG, later, seen=seen)
    assert seen_again.create_jobs == []
    [entry] = seen_again.updates["history"]
    assert (entry["trigger"], entry["upstream"], entry["upstreamRun"]) == (
        "After",
        "acme/ingest",
        "ingest-29000000",
    )
