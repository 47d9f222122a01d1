"""`kubectl cronfleet`: list, inspect and act on Schedules with your own credentials.

kubectl runs the `kubectl-cronfleet` executable found on PATH and passes it
every argument after `cronfleet`, its own flags included, so this program
parses `-n`, `--context` and `--kubeconfig` itself, as kubectl would. Errors
go to stderr; the exit code is 0 on success and 1 on an error (`run --wait`
adds 1 for a failed run and 2 for a run refused or not finished in time).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any, NoReturn

from cronfleet.clock import from_rfc3339, to_rfc3339
from cronfleet.pausing import suspension_of
from cronfleet.plugin import format as fmt
from cronfleet.plugin.actions import (
    apply_action,
    backfill_patch,
    new_token,
    pause_patch,
    reset_patch,
    resume_patch,
    run_now_patch,
)
from cronfleet.plugin.api import get_schedule, list_schedules
from cronfleet.plugin.kubeconfig import PluginError, Session, load_session
from cronfleet.plugin.logs import pick_run, run_log
from cronfleet.plugin.manualruns import EXIT_NOT_RUN, Stage, progress
from cronfleet.plugin.views import (
    cadence,
    fleet_stats,
    history_page,
    next_fire_times,
    schedule_row,
    time_zone,
)
from cronfleet.tracking import BACKFILL_ANNOTATION

PROGRAM = "kubectl cronfleet"
OUTPUTS = ("json", "yaml")
RESOURCE = "schedule.cronfleet.io"
DEFAULT_WAIT_SECONDS = 600.0
POLL_SECONDS = 1.0

Command = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """kubectl's way with bad usage: `error: …` on stderr and exit code 1."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"error: {message}\nSee '{self.prog} --help' for usage.\n")


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: 1 or more")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: write seconds, e.g. 300 or 300s"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: more than 0 seconds")
    return value


def instant(text: str) -> datetime:
    try:
        return from_rfc3339(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 instant, e.g. 2026-11-01T00:00:00Z"
        ) from None


# -- the commands ---------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _session(args: argparse.Namespace) -> Session:
    return load_session(
        getattr(args, "kubeconfig", None),
        getattr(args, "context", None),
        getattr(args, "namespace", None),
    )


def _scope(args: argparse.Namespace, session: Session) -> str | None:
    return None if getattr(args, "all_namespaces", False) else session.namespace


def cmd_list(args: argparse.Namespace) -> int:
    session = _session(args)
    namespace = _scope(args, session)
    rows = [schedule_row(item) for item in list_schedules(session, namespace)]
    if args.output:
        print(fmt.document({"items": [fmt.row_document(row) for row in rows]}, args.output))
        return 0
    if not rows:
        where = "any namespace" if namespace is None else f"{namespace} namespace"
        print(f"No schedules found in {where}.", file=sys.stderr)
        return 0
    print(fmt.schedule_table(rows, _now(), namespace is None))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    session = _session(args)
    schedule = get_schedule(session, session.namespace, args.name)
    page = history_page(schedule, args.page, args.limit, failed_only=args.failed)
    if args.page > page.pages:
        raise PluginError(
            f"--page {args.page} is past the last page: {page.pages} "
            f"({page.total} runs, {args.limit} a page)"
        )
    if args.output:
        print(fmt.document(fmt.history_document(page), args.output))
        return 0
    if page.total == 0:
        kind = "failed runs" if args.failed else "runs"
        print(f'schedule "{args.name}" has no {kind} in its status history.', file=sys.stderr)
        return 0
    if page.entries:
        print(fmt.history_table(page))
    print(fmt.history_footer(page, args.failed), file=sys.stderr)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    session = _session(args)
    schedule = get_schedule(session, session.namespace, args.name)
    job = pick_run(schedule, args.job)
    text = run_log(session, session.namespace, schedule, job, args.tail)
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    session = _session(args)
    token = new_token(_now())
    apply_action(session, session.namespace, args.name, run_now_patch(token))
    print(f"{RESOURCE}/{args.name} run requested (cronfleet.io/run-now={token})")
    if not args.wait:
        return 0
    return _follow(session, args.name, token, args.timeout)


def _follow(session: Session, name: str, token: str, timeout: float) -> int:
    """Follow a run-now token through the status until its run ends."""
    deadline = time.monotonic() + timeout
    said: set[tuple[Stage, str | None, str]] = set()
    while True:
        current = progress(get_schedule(session, session.namespace, name), token)
        news = (current.stage, current.job, current.message)
        if current.stage is Stage.FINISHED and current.run is not None:
            print(fmt.run_outcome(current.run))
        elif current.stage is Stage.REFUSED:
            print(f"run refused: {current.message}", file=sys.stderr)
        elif news not in said:
            if current.stage is Stage.DEFERRED:
                print(f"waiting: {current.message}", file=sys.stderr)
            elif current.stage is Stage.RUNNING:
                print(f"started Job {current.job}", file=sys.stderr)
            elif current.stage is Stage.RETRYING:
                print(f"failed; retrying (the last try: Job {current.job})", file=sys.stderr)
        said.add(news)
        code = current.exit_code
        if code is not None:
            return code
        if time.monotonic() >= deadline:
            where = f"Job {current.job} " if current.job else ""
            print(
                f"error: timed out after {fmt.duration(timeout)}: the run {where}has not "
                f"finished ({current.stage.value}); it goes on, see "
                f"'{PROGRAM} history {name}'",
                file=sys.stderr,
            )
            return EXIT_NOT_RUN
        time.sleep(POLL_SECONDS)


def cmd_pause(args: argparse.Namespace) -> int:
    session = _session(args)
    updated = apply_action(session, session.namespace, args.name, pause_patch(args.reason))
    held = suspension_of(updated)
    reason = held.reason if held is not None else args.reason
    print(f"{RESOURCE}/{args.name} paused ({reason})")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    session = _session(args)
    updated = apply_action(session, session.namespace, args.name, resume_patch())
    if (updated.get("spec") or {}).get("suspend") is True:
        print(
            f"{RESOURCE}/{args.name}: the pause annotation is removed, but spec.suspend is "
            "true: change it where the spec is kept (e.g. its Git repository)",
            file=sys.stderr,
        )
        return 1
    print(f"{RESOURCE}/{args.name} resumed")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    session = _session(args)
    token = new_token(_now())
    apply_action(session, session.namespace, args.name, reset_patch(token))
    print(f"{RESOURCE}/{args.name} reset requested (cronfleet.io/reset={token})")
    return 0


def cmd_next(args: argparse.Namespace) -> int:
    session = _session(args)
    schedule = get_schedule(session, session.namespace, args.name)
    now = _now()
    try:
        fires = next_fire_times(schedule, args.count, now)
    except ValueError as error:
        raise PluginError(f'schedule "{args.name}" has an invalid spec: {error}') from error
    zone = time_zone(schedule)
    if args.output:
        items = [{"time": fmt.local(fire, zone), "utc": fmt.utc(fire)} for fire in fires]
        print(fmt.document({"timeZone": zone, "items": items}, args.output))
        return 0
    held = suspension_of(schedule)
    if held is not None:
        print(
            f"note: the schedule is {held.describe()}: it fires at these times once resumed",
            file=sys.stderr,
        )
    if not fires:
        print(f'schedule "{args.name}": {cadence(schedule).describe()}; no fire time ahead')
        return 0
    print(fmt.next_table(fires, zone, now))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    session = _session(args)
    stats = fleet_stats(list_schedules(session, _scope(args, session)), _now())
    if args.output:
        print(fmt.document(fmt.stats_document(stats), args.output))
        return 0
    print(fmt.stats_table(stats))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    if args.to < args.start:
        raise PluginError(
            f"--to {to_rfc3339(args.to)} is before --from {to_rfc3339(args.start)}: "
            "the range must not end before it starts"
        )
    session = _session(args)
    schedule = get_schedule(session, session.namespace, args.name)
    try:
        # As the operator counts them: the range's own ends included.
        fires = cadence(schedule).fire_times(args.start - timedelta(seconds=1), args.to)
    except ValueError as error:
        raise PluginError(f'schedule "{args.name}" has an invalid spec: {error}') from error
    if not fires:
        raise PluginError(
            f'no fire time of schedule "{args.name}" ({cadence(schedule).describe()}) falls '
            f"between {to_rfc3339(args.start)} and {to_rfc3339(args.to)}: nothing to backfill"
        )
    patch = backfill_patch(args.start, args.to)
    value = patch["metadata"]["annotations"][BACKFILL_ANNOTATION]
    apply_action(session, session.namespace, args.name, patch)
    print(
        f"{RESOURCE}/{args.name} backfill requested ({BACKFILL_ANNOTATION}={value}): "
        f"{len(fires)} fire times, from {fmt.utc(fires[0])} to {fmt.utc(fires[-1])}"
    )
    return 0


# -- the parser -----------------------------------------------------------------------


def _connection_flags(all_namespaces: bool) -> Parser:
    # SUPPRESS: a flag given before the command is not overwritten by the
    # command's own default, so `-n x list` and `list -n x` both work.
    common = Parser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("-n", "--namespace", help="the namespace (default: the context's)")
    common.add_argument("--context", help="the kubeconfig context to use")
    common.add_argument("--kubeconfig", help="path to the kubeconfig file")
    if all_namespaces:
        common.add_argument(
            "-A",
            "--all-namespaces",
            action="store_true",
            help="every namespace the user may list",
        )
    return common


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", choices=OUTPUTS, help="print json or yaml instead of a table"
    )


def build_parser() -> argparse.ArgumentParser:
    common = _connection_flags(all_namespaces=False)
    listing = _connection_flags(all_namespaces=True)
    parser = Parser(
        prog=PROGRAM,
        parents=[listing],
        description=(
            "Inspect and act on cronfleet Schedules with your own kubeconfig credentials. "
            "Actions write annotations, never the spec, so a Schedule kept in Git does not drift."
        ),
        epilog=f"Run '{PROGRAM} COMMAND --help' for a command's flags.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    def command(name: str, run: Command, text: str, flags: Parser = common) -> Any:
        sub = commands.add_parser(name, parents=[flags], help=text, description=text)
        sub.set_defaults(run=run)
        return sub

    sub = command(
        "list", cmd_list, "list Schedules: schedule in words, phase, results, next run", listing
    )
    _output(sub)

    sub = command("history", cmd_history, "a Schedule's runs, newest first, a page at a time")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--page", type=positive, default=1, help="page number, from 1 (default 1)")
    sub.add_argument("--limit", type=positive, default=20, help="runs per page (default 20)")
    sub.add_argument("--failed", action="store_true", help="only failed and timed-out runs")
    _output(sub)

    sub = command("logs", cmd_logs, "the log of a run's pod (the newest run by default)")
    sub.add_argument("name", metavar="NAME")
    # dest "job": "run" is the attribute every command's function is kept in.
    sub.add_argument("--run", dest="job", metavar="JOB", help="the run's Job name (see history)")
    sub.add_argument("--tail", type=positive, help="only the last N lines")

    sub = command("run", cmd_run, "start a run now (a new cronfleet.io/run-now token)")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument(
        "--wait",
        action="store_true",
        help="follow the run (and its retries) and exit 0 if it succeeds, 1 if it fails, "
        "2 if refused or not finished in time",
    )
    sub.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_WAIT_SECONDS,
        help=f"with --wait: give up after this many seconds (default {DEFAULT_WAIT_SECONDS:.0f})",
    )

    sub = command("pause", cmd_pause, "pause a Schedule (the cronfleet.io/pause annotation)")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--reason", default="", help="why; shown in the status and events")

    sub = command("resume", cmd_resume, "resume a paused Schedule (removes cronfleet.io/pause)")
    sub.add_argument("name", metavar="NAME")

    sub = command("reset", cmd_reset, "clear Failed and the retry count, and resume the cadence")
    sub.add_argument("name", metavar="NAME")

    sub = command("next", cmd_next, "the next fire times, in the Schedule's time zone and UTC")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--count", type=positive, default=5, help="how many (default 5)")
    _output(sub)

    sub = command(
        "stats", cmd_stats, "schedules, enabled, runs, succeeded, failed, runs in 24 h", listing
    )
    _output(sub)

    sub = command("backfill", cmd_backfill, "run every fire time of a past range")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--from", dest="start", type=instant, required=True, help="RFC 3339 start")
    sub.add_argument("--to", type=instant, required=True, help="RFC 3339 end (included)")

    # -- `kubectl cronfleet dashboard`: registered by the dashboard package -----------
    # The dashboard ships as its own subpackage (and extra); it adds its command
    # here when it is installed. Its parser takes the same connection flags.
    commands.cronfleet_parents = [listing]  # type: ignore[attr-defined]
    dashboard_server: ModuleType | None
    try:
        dashboard_server = importlib.import_module("cronfleet.plugin.dashboard.server")
    except ImportError:
        dashboard_server = None  # installed without the dashboard extra
    if dashboard_server is not None:
        dashboard_server.add_arguments(commands)
    # -- end of the dashboard's place ---------------------------------------------------
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Command = args.run
    try:
        return run(args)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `| head` stopped reading: what it wanted was printed. Python would
        # still complain when flushing stdout at exit, so point it at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
