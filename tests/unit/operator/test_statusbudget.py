"""The status byte budget: the worst case the models allow, and what the last step cuts."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cronfleet.chains import CYCLES_KEPT
from cronfleet.models import MAX_UPSTREAMS
from cronfleet.reconcile import Observed, decide
from cronfleet.statusbudget import (
    MAX_TOKEN_CHARS,
    STATUS_BUDGET_BYTES,
    TRIMMED_MARK,
    bounded_token,
    bounded_tokens,
    encoded_size,
    fit_status,
)
from cronfleet.tracking import (
    MANUAL_RUNS_KEPT,
    MAX_BACKFILL_RUNS,
    MISSED_RUNS_KEPT,
    RECORDED_JOBS_KEPT,
)
from tests.unit.operator.test_reconcile import CONFIG, NOW, TASKS, schedule

HISTORY_KEEP_MAX = 100  # spec.history.keep's maximum
MESSAGE_CHARS = 1024  # a run message is cut to this many characters
DATA_BYTES = 4096  # the runner's data, at most (the runner contract)
# A character JSON escapes as \u00XX: six bytes for one.
ESCAPED = "\x01"
NAME = "n" * 63
TIME = "2026-11-24T08:00:00Z"


def run_record(number: int, result: str | None, message: str) -> dict[str, Any]:
    return {
        "job": f"{NAME[:50]}-{number:012d}",
        "trigger": "After",
        "attempt": 6,
        "scheduledTime": TIME,
        "startTime": TIME,
        "completionTime": TIME if result else None,
        "durationSeconds": 12345.678,
        "result": result,
        "reason": "BackoffLimitExceeded" if result else "CreateContainerConfigError",
        "exitCode": 255 if result else None,
        "message": message,
        "upstream": f"{'a' * 63}/{'b' * 253}",
        "upstreamRun": NAME,
    }


def worst_case_status(running: int = 3) -> dict[str, Any]:
    """Every list at its bound, every string at its longest, every character escaped."""
    message = ESCAPED * MESSAGE_CHARS
    token = "t" * MAX_TOKEN_CHARS
    history = [run_record(i, None, message) for i in range(running)]
    history += [
        run_record(i, "Failed", message) for i in range(running, running + HISTORY_KEEP_MAX)
    ]
    return {
        "phase": "Active",
        "message": "m" * 2048,
        "observedGeneration": 2**62,
        "cronJob": NAME,
        "scheduleDescription": "d" * 512,
        "counts": {"succeeded": 2**62, "failed": 2**62, "cancelled": 2**62, "missed": 2**62},
        "history": history,
        "missedRuns": [{"scheduledTime": TIME, "reason": "r" * 256, "cause": "ConcurrencyForbid"}]
        * MISSED_RUNS_KEPT,
        "recordedJobs": [NAME] * RECORDED_JOBS_KEPT,
        "queuedRuns": [{"trigger": "Backfill", "scheduledTime": TIME, "request": token}]
        * MAX_BACKFILL_RUNS,
        "cycles": [
            {
                "number": 2**62,
                "run": NAME,
                "result": "Succeeded",
                "trigger": "After",
                "finishedTime": TIME,
                "data": '"' * DATA_BYTES,
            }
        ]
        * CYCLES_KEPT,
        "upstreams": [
            {
                "schedule": "b" * 253,
                "on": "Completed",
                "found": True,
                "uid": "u" * 36,
                "handledCycle": 2**62,
                "lastRun": NAME,
                "lastResult": "Succeeded",
            }
        ]
        * MAX_UPSTREAMS,
        "downstreams": ["c" * 253] * 50,
        "manualRuns": [
            {"token": token, "state": "Refused", "job": NAME, "message": "w" * 256, "time": TIME}
        ]
        * MANUAL_RUNS_KEPT,
        "lastHandledTokens": {
            key: token for key in ("runNow", "runNowDeferred", "reset", "backfill")
        },
        "conditions": [
            {
                "type": kind,
                "status": "True",
                "reason": "r" * 64,
                "message": "m" * 2048,
                "observedGeneration": 2**62,
                "lastTransitionTime": TIME,
            }
            for kind in ("Ready", "Reconciling", "Stalled", "RunBlocked", "UpstreamsFound")
        ],
    }


def finished(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [run for run in history if run.get("result")]


def test_the_worst_case_exceeds_the_budget_and_is_cut_to_fit() -> None:
    status = worst_case_status()
    before = encoded_size(status)
    history = encoded_size(status["history"])
    # The figures the README gives: history is the largest part, and the only
    # one the budget may cut.
    assert before > STATUS_BUDGET_BYTES
    assert history > before / 2
    assert before - history < STATUS_BUDGET_BYTES
    fitted = fit_status(status, {})
    assert encoded_size(fitted) <= STATUS_BUDGET_BYTES
    # Cutting messages was enough: every run is still listed, the newest whole.
    assert len(fitted["history"]) == len(status["history"])
    cut = [run["message"].endswith(TRIMMED_MARK) for run in fitted["history"]]
    whole = cut.index(True)
    assert whole >= 10 and all(cut[whole:]), "the oldest messages are cut, the newest kept"
    assert fitted["history"][:whole] == status["history"][:whole]
    assert {k: v for k, v in fitted.items() if k != "history"} == {
        k: v for k, v in status.items() if k != "history"
    }
    sizes = ", ".join(f"{key} {encoded_size(value) / 1024:.1f}" for key, value in status.items())
    fitted_kib = encoded_size(fitted) / 1024
    print(f"\nworst case {before / 1024:.0f} KiB ({sizes}); fitted {fitted_kib:.0f} KiB")


def test_runs_are_dropped_oldest_first_but_never_running_ones() -> None:
    status = worst_case_status(running=30)
    running = [run for run in status["history"] if not run["result"]]
    # Room for the running runs and about ten cut finished ones, no more.
    budget = encoded_size({**status, "history": running}) + 10 * 1024
    fitted = fit_status(status, {}, budget=budget)
    assert encoded_size(fitted) <= budget
    kept = fitted["history"]
    assert [run for run in kept if not run["result"]] == status["history"][:30]
    kept_finished = finished(kept)
    assert 0 < len(kept_finished) < HISTORY_KEEP_MAX
    # The newest finished runs stay, in order.
    assert [r["job"] for r in kept_finished] == [
        r["job"] for r in finished(status["history"])[: len(kept_finished)]
    ]
    assert fitted["counts"] == status["counts"]


def test_a_status_that_fits_is_left_alone() -> None:
    status = {"history": [run_record(1, "Succeeded", "ok")], "counts": {"succeeded": 1}}
    assert fit_status(status, {}) == status


def test_the_stored_fields_count_toward_the_budget() -> None:
    new = {"history": [run_record(i, "Failed", "x" * MESSAGE_CHARS) for i in range(10)]}
    stored = {"recordedJobs": ["j" * 63] * 200}
    budget = encoded_size({**stored, **new}) - 1
    assert encoded_size(fit_status(new, {}, budget=budget)["history"]) == encoded_size(
        new["history"]
    )
    assert encoded_size({**stored, **fit_status(new, stored, budget=budget)}) <= budget


@settings(max_examples=60, deadline=None)
@given(
    runs=st.lists(
        st.tuples(st.booleans(), st.text(max_size=MESSAGE_CHARS)), min_size=0, max_size=40
    ),
    budget=st.integers(min_value=500, max_value=60_000),
)
def test_fitted_status_is_within_budget_unless_only_running_runs_are_left(
    runs: list[tuple[bool, str]], budget: int
) -> None:
    history = [
        run_record(i, "Succeeded" if done else None, message)
        for i, (done, message) in enumerate(runs)
    ]
    status = {"history": history, "counts": {"succeeded": 7}}
    fitted = fit_status(status, {}, budget=budget)
    running = [run for run in history if not run["result"]]
    assert [run for run in fitted["history"] if not run["result"]] == running
    assert fitted["counts"] == {"succeeded": 7}
    if finished(fitted["history"]):
        assert encoded_size(fitted) <= budget
    # Kept finished runs are the newest ones, in order.
    jobs = [run["job"] for run in finished(fitted["history"])]
    assert jobs == [run["job"] for run in finished(history)][: len(jobs)]


def test_decide_writes_a_status_within_the_budget() -> None:
    status = worst_case_status(running=0)
    body = schedule(status=status, history={"keep": HISTORY_KEEP_MAX})
    plan = decide(Observed(body, None, True, TASKS), CONFIG, NOW)
    written = {**status, **plan.status_patch}
    assert encoded_size(written) <= STATUS_BUDGET_BYTES
    assert written["counts"] == status["counts"]


# -- tokens from annotations ---------------------------------------------------------------


def test_short_tokens_are_kept_as_they_are() -> None:
    assert bounded_token("2026-11-24T08:00") == "2026-11-24T08:00"
    assert bounded_token("x" * MAX_TOKEN_CHARS) == "x" * MAX_TOKEN_CHARS


@given(st.text(min_size=MAX_TOKEN_CHARS + 1, max_size=4000), st.text(min_size=1, max_size=5))
def test_long_tokens_are_bounded_and_still_tell_tokens_apart(token: str, tail: str) -> None:
    kept = bounded_token(token)
    assert len(kept) <= MAX_TOKEN_CHARS
    assert kept == bounded_token(token)
    assert kept != bounded_token(token + tail)


def test_only_the_token_annotations_are_bounded() -> None:
    long = "v" * 100_000
    annotations = {"cronfleet.io/run-now": long, "cronfleet.io/pause": "db migration"}
    bounded = bounded_tokens(annotations, ["cronfleet.io/run-now", "cronfleet.io/reset"])
    assert len(bounded["cronfleet.io/run-now"]) <= MAX_TOKEN_CHARS
    assert bounded["cronfleet.io/pause"] == "db migration"
    assert "cronfleet.io/reset" not in bounded


def test_a_long_run_now_token_reaches_status_bounded() -> None:
    token = "r" * 200_000
    body = schedule()
    body["metadata"]["annotations"] = {"cronfleet.io/run-now": token}
    plan = decide(Observed(body, None, True, TASKS), CONFIG, NOW)
    handled = plan.status_patch["lastHandledTokens"]["runNow"]
    assert len(handled) <= MAX_TOKEN_CHARS and handled == bounded_token(token)
    assert encoded_size(plan.status_patch) < 64 * 1024
