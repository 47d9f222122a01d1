"""A Job made with `kubectl create job --from=cronjob/X` is a manual run."""

from __future__ import annotations

from typing import Any

from cronfleet.models import RunTrigger
from cronfleet.runs import trigger_of
from cronfleet.tracking import track
from tests.unit.operator.test_tracking import CONFIG, NOW, running, schedule, spec


def kubectl_created(name: str) -> dict[str, Any]:
    # kubectl copies the template's annotations (trigger Scheduled) and adds its mark.
    job = running(name)
    job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] = "manual"
    return job


def test_kubectls_mark_makes_the_trigger_manual() -> None:
    assert trigger_of(kubectl_created("sync-by-hand")) is RunTrigger.MANUAL
    assert trigger_of(running("sync-29000000")) is RunTrigger.SCHEDULED
    other = running("sync-29000000")
    other["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] = "something-else"
    assert trigger_of(other) is RunTrigger.SCHEDULED


def test_the_history_records_it_as_manual_and_maxruns_does_not_count_it() -> None:
    out = track(schedule(), spec(maxRuns=5), [kubectl_created("sync-by-hand")], {}, CONFIG, NOW)
    [entry] = out.updates["history"]
    assert (entry["job"], entry["trigger"]) == ("sync-by-hand", "Manual")
    assert out.updates["scheduledRuns"] == 0
