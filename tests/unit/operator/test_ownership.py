"""Runs are matched by controller owner reference; a shared CronJob name goes to the elder."""

from __future__ import annotations

from typing import Any

from cronfleet.ownership import controller_uid, name_holder, own_cronjob, own_pods, own_runs


def owned(name: str, uid: str, owner: str | None, controller: bool = True) -> dict[str, Any]:
    references = [{"kind": "X", "name": "x", "uid": owner, "controller": controller}]
    return {"metadata": {"name": name, "uid": uid, "ownerReferences": references if owner else []}}


def test_runs_are_the_jobs_the_schedule_or_its_cronjob_controls() -> None:
    cronjob = owned("sync", "cj-1", "s-1")
    jobs = [
        owned("sync-manual", "j-1", "s-1"),
        owned("sync-29000000", "j-2", "cj-1"),
        owned("forged", "j-3", None),  # the label alone, created by someone
        owned("other", "j-4", "s-2"),
        owned("not-controller", "j-5", "s-1", controller=False),
    ]
    assert [j["metadata"]["name"] for j in own_runs(jobs, "s-1", cronjob)] == [
        "sync-manual",
        "sync-29000000",
    ]
    assert own_cronjob(cronjob, "s-1") is cronjob and own_cronjob(cronjob, "s-2") is None
    pods = [owned("p1", "p-1", "j-1"), owned("p2", "p-2", "j-9")]
    assert [p["metadata"]["name"] for p in own_pods(pods, jobs[0])] == ["p1"]


def test_crafted_owner_references_do_not_raise() -> None:
    for references in (None, "x", [None], [{"controller": "yes"}], [{"controller": True}]):
        assert controller_uid({"metadata": {"ownerReferences": references}}) is None
    assert controller_uid({}) is None


def test_the_schedule_created_first_keeps_a_shared_cronjob_name() -> None:
    def schedule(name: str, created: str, uid: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "creationTimestamp": created, "uid": uid}}

    elder = schedule("a" * 60, "2026-11-30T10:00:00Z", "u-2")
    younger = schedule("a" * 43 + "-0123abcd", "2026-11-30T10:00:05Z", "u-1")
    assert name_holder(younger, [elder]) is elder
    assert name_holder(elder, [younger]) is None
    twin = schedule("b", "2026-11-30T10:00:00Z", "u-1")
    assert name_holder(elder, [twin]) is twin  # the same second: the smaller uid
