"""Argument handling of `kubectl cronfleet`, as kubectl users expect it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cronfleet.plugin.cli import build_parser, main

COMMANDS = [
    "list",
    "history",
    "logs",
    "run",
    "pause",
    "resume",
    "reset",
    "next",
    "stats",
    "backfill",
]


def parse(*argv: str) -> dict[str, object]:
    return vars(build_parser().parse_args(list(argv)))


def test_connection_flags_work_before_and_after_the_command() -> None:
    after = parse("history", "sync", "-n", "acme", "--context", "prod", "--kubeconfig", "/k")
    before = parse("-n", "acme", "--context", "prod", "--kubeconfig", "/k", "history", "sync")
    for args in (after, before):
        assert (args["namespace"], args["context"], args["kubeconfig"]) == ("acme", "prod", "/k")
    assert parse("--namespace=acme", "list")["namespace"] == "acme"


def test_flags_not_given_are_left_to_the_kubeconfig() -> None:
    args = parse("list")
    assert "namespace" not in args and "context" not in args and "kubeconfig" not in args
    assert "all_namespaces" not in args
    assert parse("list", "-A")["all_namespaces"] is True
    assert parse("stats", "--all-namespaces")["all_namespaces"] is True


def test_next_keeps_dash_n_for_the_namespace() -> None:
    args = parse("next", "sync", "-n", "acme", "--count", "3")
    assert (args["namespace"], args["count"], args["name"]) == ("acme", 3, "sync")
    assert parse("next", "sync")["count"] == 5


def test_history_paging_and_output() -> None:
    args = parse("history", "sync", "--page", "2", "--limit", "5", "--failed", "-o", "yaml")
    assert (args["page"], args["limit"], args["failed"], args["output"]) == (2, 5, True, "yaml")
    defaults = parse("history", "sync")
    assert (defaults["page"], defaults["limit"], defaults["failed"], defaults["output"]) == (
        1,
        20,
        False,
        None,
    )


def test_run_wait_and_timeout() -> None:
    args = parse("run", "sync", "--wait", "--timeout", "90s")
    assert (args["wait"], args["timeout"]) == (True, 90.0)
    assert parse("run", "sync")["wait"] is False


def test_logs_run_does_not_shadow_the_command() -> None:
    args = parse("logs", "sync", "--run", "sync-29000000", "--tail", "20")
    assert (args["job"], args["tail"]) == ("sync-29000000", 20)
    assert callable(args["run"])


def test_pause_reason_and_backfill_range() -> None:
    assert parse("pause", "sync", "--reason", "db migration")["reason"] == "db migration"
    args = parse(
        "backfill", "sync", "--from", "2026-11-01T00:00:00Z", "--to", "2026-11-02T00:00:00Z"
    )
    assert args["start"] == datetime(2026, 11, 1, tzinfo=UTC)
    assert args["to"] == datetime(2026, 11, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["next", "sync", "--count", "0"], "argument --count: 0 is not allowed: 1 or more"),
        (["history", "sync", "--page", "two"], "argument --page: 'two' is not a whole number"),
        (["history", "sync", "-o", "wide"], "argument -o/--output: invalid choice: 'wide'"),
        (["run", "sync", "--timeout", "soon"], "'soon' is not a duration"),
        (
            ["backfill", "sync", "--from", "yesterday", "--to", "2026-11-02T00:00:00Z"],
            "'yesterday' is not an RFC 3339 instant",
        ),
        (
            ["backfill", "sync", "--from", "2026-11-01T00:00:00Z"],
            "the following arguments are required: --to",
        ),
        (["history"], "the following arguments are required: NAME"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_usage_names_the_flag_on_stderr_and_exits_1(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and words in captured.err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: kubectl cronfleet {command}")
    assert "--namespace" in text and "--context" in text and "--kubeconfig" in text


def test_the_dashboard_registers_its_command_when_installed() -> None:
    pytest.importorskip("cronfleet.plugin.dashboard.server")
    assert "dashboard" in build_parser().format_help()


def test_errors_go_to_stderr_with_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["list", "--kubeconfig", str(tmp_path / "absent")])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err == f"error: --kubeconfig {str(tmp_path / 'absent')!r}: no such file\n"


def test_a_backfill_range_ending_before_it_starts_is_refused_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["backfill", "sync", "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-01T00:00:00Z"]
    # No kubeconfig exists: the range is judged first.
    code = main([*argv, "--kubeconfig", str(tmp_path / "absent")])
    assert code == 1
    assert capsys.readouterr().err == (
        "error: --to 2026-11-01T00:00:00Z is before --from 2026-11-02T00:00:00Z: "
        "the range must not end before it starts\n"
    )
