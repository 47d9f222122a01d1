"""What each action writes: annotations only, never spec."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from cronfleet.pausing import PAUSE_ANNOTATION, suspension
from cronfleet.plugin.actions import (
    new_token,
    pause_patch,
    reset_patch,
    resume_patch,
    run_now_patch,
)
from cronfleet.plugin.api import api_error
from cronfleet.runs import manual_job_name

NOW = datetime(2026, 11, 24, 10, 30, 5, tzinfo=UTC)


def test_tokens_are_new_each_time_and_say_when() -> None:
    tokens = {new_token(NOW) for _ in range(50)}
    assert len(tokens) == 50
    assert all(token.startswith("20261124t103005-") for token in tokens)


def test_a_token_makes_a_valid_job_name() -> None:
    name = manual_job_name("sync", new_token(NOW))
    assert len(name) <= 63 and name == name.lower()


def test_every_patch_touches_annotations_only() -> None:
    patches = [run_now_patch("t1"), pause_patch("db migration"), resume_patch(), reset_patch("t2")]
    for patch in patches:
        assert list(patch) == ["metadata"]
        assert list(patch["metadata"]) == ["annotations"]


def test_the_patches_name_the_operators_annotations() -> None:
    assert run_now_patch("t1")["metadata"]["annotations"] == {"cronfleet.io/run-now": "t1"}
    assert reset_patch("t2")["metadata"]["annotations"] == {"cronfleet.io/reset": "t2"}
    assert pause_patch(" db migration ")["metadata"]["annotations"] == {
        PAUSE_ANNOTATION: "db migration"
    }


def test_pause_then_resume_as_the_operator_reads_them() -> None:
    paused = pause_patch("")["metadata"]["annotations"]
    held = suspension(False, paused)
    assert held is not None and held.reason == "paused with kubectl cronfleet"
    # A merge patch's null removes the key: the operator then sees no pause.
    assert (
        json.dumps(resume_patch()) == '{"metadata": {"annotations": {"cronfleet.io/pause": null}}}'
    )
    resumed = {k: v for k, v in paused.items() if resume_patch()["metadata"]["annotations"][k]}
    assert suspension(False, resumed) is None


def refusal(status: int, message: str) -> ApiException:
    error = ApiException(status=status, reason="Reason")
    error.body = json.dumps({"kind": "Status", "message": message})
    return error


def test_api_errors_become_sentences() -> None:
    forbidden = api_error(refusal(403, 'schedules "sync" is forbidden: User "bob"'), "schedule")
    assert str(forbidden) == 'forbidden: schedules "sync" is forbidden: User "bob"'
    assert forbidden.exit_code == 1
    missing = api_error(refusal(404, 'schedules "nope" not found'), 'schedule "nope"')
    assert str(missing).startswith('not found: schedule "nope"')
    bare = api_error(ApiException(status=500, reason="Internal Server Error"), "schedule")
    assert str(bare) == "schedule: 500 Internal Server Error"
