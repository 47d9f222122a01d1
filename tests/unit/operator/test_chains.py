"""Run B after A: cycles of spec.after, and which upstream cycles start runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cronfleet.chains import UpstreamView, find_cycle, follow_upstreams
from cronfleet.clock import to_rfc3339
from cronfleet.models import AfterOn, CycleRecord, RunResult, RunTrigger, Upstream, UpstreamStatus
from cronfleet.reconcile import Observed, decide
from tests.unit.operator.test_reconcile import CONFIG, TASKS, schedule
from tests.unit.operator.test_reconcile import NOW as AT

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def graph(edges: dict[str, list[str]]) -> Any:
    return lambda name: edges.get(name, [])


def test_a_cycle_is_found_from_each_of_its_members_and_named_in_order() -> None:
    edges = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert find_cycle("a", graph(edges)) == ["a", "b", "c", "a"]
    assert find_cycle("c", graph(edges)) == ["c", "a", "b", "c"]
    # d runs after the cycle but is not in it.
    assert find_cycle("d", graph(edges)) is None
    assert find_cycle("a", graph({"a": ["a"]})) == ["a", "a"]


def test_a_diamond_and_a_long_chain_are_no_cycle() -> None:
    diamond = {"report": ["ingest-a", "ingest-b"], "ingest-a": ["base"], "ingest-b": ["base"]}
    assert find_cycle("report", graph(diamond)) is None
    chain = {f"s{i}": [f"s{i + 1}"] for i in range(5000)}
    assert find_cycle("s0", graph(chain)) is None  # no recursion limit in the way
    chain["s5000"] = ["s0"]
    found = find_cycle("s0", graph(chain))
    assert found is not None and len(found) == 5002


def cycle(number: int, result: str = "Succeeded", minutes: int = 0) -> CycleRecord:
    return CycleRecord(
        number=number,
        run=f"ingest-{number}",
        result=RunResult(result),
        trigger=RunTrigger.SCHEDULED,
        finished_time=to_rfc3339(NOW + timedelta(minutes=minutes)),
        data='{"rows":42}' if result == "Succeeded" else None,
    )


def view(*cycles: CycleRecord, uid: str = "u1") -> UpstreamView:
    return UpstreamView(uid=uid, cycles=sorted(cycles, key=lambda c: -c.number))


def test_each_new_cycle_that_ends_as_asked_queues_one_run_with_its_facts() -> None:
    after = [Upstream(schedule="ingest")]
    mark = UpstreamStatus(schedule="ingest", found=True, uid="u1", handled_cycle=1)
    upstream = view(cycle(1), cycle(2), cycle(3, "Failed"), cycle(4))
    out = follow_upstreams(after, {"ingest": mark}, {"ingest": upstream}, None)
    assert [(q.upstream_run, q.upstream_result) for q in out.queued] == [
        ("ingest-2", "Succeeded"),
        ("ingest-4", "Succeeded"),
    ]
    assert out.queued[0].upstream_data == '{"rows":42}'
    [status] = out.upstreams
    assert (status.handled_cycle, status.last_run, status.found) == (4, "ingest-4", True)
    # Acted on: the same cycles never queue again.
    again = follow_upstreams(after, {"ingest": status}, {"ingest": upstream}, None)
    assert again.queued == [] and again.upstreams == [status]


def test_on_failed_and_on_finished() -> None:
    upstream = view(cycle(1, "Succeeded"), cycle(2, "Failed"), cycle(3, "Cancelled"))
    mark = {"ingest": UpstreamStatus(schedule="ingest", uid="u1", handled_cycle=0)}
    failed = follow_upstreams(
        [Upstream(schedule="ingest", on=AfterOn.FAILED)], mark, {"ingest": upstream}, None
    )
    assert [q.upstream_run for q in failed.queued] == ["ingest-2"]
    finished = follow_upstreams(
        [Upstream(schedule="ingest", on=AfterOn.FINISHED)], mark, {"ingest": upstream}, None
    )
    assert [q.upstream_run for q in finished.queued] == ["ingest-1", "ingest-2", "ingest-3"]


def test_a_new_downstream_follows_cycles_that_end_after_its_creation_only() -> None:
    after = [Upstream(schedule="ingest")]
    upstream = view(cycle(7, minutes=-10), cycle(8, minutes=5))
    created = follow_upstreams(after, {}, {"ingest": upstream}, NOW)
    assert [q.upstream_run for q in created.queued] == ["ingest-8"]
    # An after entry added to an existing Schedule: only cycles from now on.
    added = follow_upstreams(after, {}, {"ingest": upstream}, None)
    assert added.queued == [] and added.upstreams[0].handled_cycle == 8


def test_a_missing_upstream_keeps_its_mark_and_its_cycles_all_count_once_it_exists() -> None:
    after = [Upstream(schedule="later")]
    missing = follow_upstreams(after, {}, {"later": None}, NOW)
    [status] = missing.upstreams
    assert status.found is False and status.uid == ""
    # Not judged yet (the caches are filling): nothing changes.
    assert follow_upstreams(after, {"later": status}, {}, None).upstreams == [status]
    appeared = follow_upstreams(after, {"later": status}, {"later": view(cycle(1))}, None)
    assert [q.upstream_run for q in appeared.queued] == ["ingest-1"]
    # Deleted and created again: a new object, whose cycles count from 1 again.
    mark = appeared.upstreams[0]
    again = follow_upstreams(after, {"later": mark}, {"later": view(cycle(1), uid="u2")}, None)
    assert [q.upstream_run for q in again.queued] == ["ingest-1"]


def test_cycles_trimmed_before_they_were_acted_on_are_reported() -> None:
    mark = {"ingest": UpstreamStatus(schedule="ingest", uid="u1", handled_cycle=2)}
    upstream = view(*(cycle(n) for n in range(6, 16)))
    out = follow_upstreams([Upstream(schedule="ingest")], mark, {"ingest": upstream}, None)
    assert len(out.queued) == 10
    assert [e[1] for e in out.events if e[0] == "Warning"] == ["UpstreamCyclesLost"]
    assert "3 run cycle(s) of ingest" in out.events[0][2]


def test_a_schedule_in_a_cycle_is_invalid_and_names_the_cycle() -> None:
    body = schedule(after=[{"schedule": "report"}])
    observed = Observed(
        body,
        None,
        None,
        TASKS,
        upstreams={"report": UpstreamView("u", [])},
        after_cycle=["sync", "report", "sync"],
    )
    plan = decide(observed, CONFIG, AT)
    assert plan.status_patch["phase"] == "Invalid"
    assert "spec.after forms a cycle: sync → report → sync" in plan.status_patch["message"]
    assert plan.apply_cronjob is None and plan.create_jobs == []
    assert [e.reason for e in plan.events] == ["InvalidSpec"]


def test_a_missing_upstream_is_a_condition_and_one_warning_until_it_exists() -> None:
    body = schedule(after=[{"schedule": "ingest"}])
    plan = decide(Observed(body, None, None, TASKS, upstreams={"ingest": None}), CONFIG, AT)
    found = next(c for c in plan.status_patch["conditions"] if c["type"] == "UpstreamsFound")
    assert (found["status"], found["reason"]) == ("False", "UpstreamNotFound")
    assert "no Schedule ingest in namespace acme" in found["message"]
    assert plan.status_patch["phase"] == "Active"
    assert [e.reason for e in plan.events] == ["UpstreamNotFound"]
    body["status"] = plan.status_patch
    quiet = decide(Observed(body, None, None, TASKS, upstreams={"ingest": None}), CONFIG, AT)
    assert quiet.events == []
    # Not judged while the caches fill: no condition, no event.
    early = decide(
        Observed(schedule(after=[{"schedule": "ingest"}]), None, None, TASKS), CONFIG, AT
    )
    assert all(c["type"] != "UpstreamsFound" for c in early.status_patch["conditions"])
    appeared = decide(
        Observed(body, None, None, TASKS, upstreams={"ingest": UpstreamView("u", [])}), CONFIG, AT
    )
    found = next(c for c in appeared.status_patch["conditions"] if c["type"] == "UpstreamsFound")
    assert (found["status"], found["reason"]) == ("True", "AllFound")


def test_an_upstream_lists_its_downstreams() -> None:
    plan = decide(Observed(schedule(), None, None, TASKS, downstreams=["b", "a"]), CONFIG, AT)
    assert plan.status_patch["downstreams"] == ["a", "b"]


def test_an_unquoted_on_key_as_yaml_1_1_tools_send_it_means_on() -> None:
    # kubectl, Helm and Argo CD read `on: Failed` as {true: Failed} and send "true".
    sent = Upstream.model_validate({"schedule": "ingest", "true": "Failed"})
    assert sent.when is AfterOn.FAILED
    assert Upstream.model_validate({"schedule": "ingest", "on": "Finished"}).when is (
        AfterOn.FINISHED
    )
    assert Upstream.model_validate({"schedule": "ingest"}).when is AfterOn.SUCCEEDED
