"""``cronfleet-operator``: run the operator."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import os
import socket
import sys
import threading

import kopf

from cronfleet.config import OperatorConfig
from cronfleet.leaderelection import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_LEASE_NAME,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RETRY_PERIOD,
    ElectionError,
    settings_from,
)

# The API server stores objects nested up to 10,000 levels deep (the limit of
# its JSON decoder). kopf's watch and our own client decode every object with
# the json module, whose C decoder counts against the recursion limit (1,000 by
# default) as copy.deepcopy and json.dumps do: one such Schedule would raise
# RecursionError in the watch and stop the operator at every start. Decoding
# takes two levels of the limit per level of nesting, so 40,000 covers 10,000
# levels with room to spare. Measured on CPython 3.11: a 10,000-level object is
# decoded, re-encoded and deep-copied in the main thread and in a thread (kopf
# runs sync handlers in threads), needing between 1 and 2 MiB of C stack; at
# 20,000 levels the same calls stop with RecursionError, not a crash.
RECURSION_LIMIT = 40_000
# Threads get at least the usual main-thread stack, whatever the platform's
# default for threads is (128 KiB on musl, for one).
THREAD_STACK_BYTES = 8 * 1024 * 1024


def allow_deep_objects() -> None:
    """Let this process decode, copy and encode anything the API server can store."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    threading.stack_size(max(threading.stack_size(), THREAD_STACK_BYTES))


# The caches hold millions of small containers (10,000 Schedules and their
# CronJobs), which the cyclic collector would otherwise walk again and again
# while they are listed at start: young collections come every 700 allocations
# by default. Reference counting frees almost everything here anyway.
GC_YOUNG_THRESHOLD = 50_000


def tune_collector() -> None:
    """Collect cycles less often, and never walk what start-up loaded (modules, classes)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cronfleet-operator", description=__doc__)
    parser.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="watch only this namespace (repeatable); default: $CRONFLEET_NAMESPACES or all",
    )
    parser.add_argument(
        "--log-format",
        choices=["json", "plain", "full"],
        default=os.environ.get("CRONFLEET_LOG_FORMAT", "plain"),
    )
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--liveness",
        default=os.environ.get("CRONFLEET_LIVENESS", ""),
        help="liveness endpoint, e.g. http://0.0.0.0:8081/healthz",
    )
    election = parser.add_argument_group(
        "leader election",
        "with several replicas, one acts and the others stand by "
        "(each flag overrides its CRONFLEET_LEADER_ELECTION_* variable; durations in seconds)",
    )
    election.add_argument(
        "--leader-elect",
        choices=["true", "false"],
        default=None,
        help="elect one acting replica through a Lease; default: $CRONFLEET_LEADER_ELECTION",
    )
    for flag, default in (
        ("lease-duration", DEFAULT_LEASE_DURATION),
        ("renew-deadline", DEFAULT_RENEW_DEADLINE),
        ("retry-period", DEFAULT_RETRY_PERIOD),
    ):
        election.add_argument(f"--leader-elect-{flag}", default=None, help=f"default: {default:g}")
    election.add_argument(
        "--leader-elect-resource-name",
        default=None,
        help=f"the Lease; default: {DEFAULT_LEASE_NAME}",
    )
    election.add_argument(
        "--leader-elect-resource-namespace",
        default=None,
        help="the Lease's namespace; default: $POD_NAMESPACE, else the service account's",
    )
    args = parser.parse_args(argv)
    allow_deep_objects()
    config = OperatorConfig.from_env()
    try:
        election_settings = settings_from(
            os.environ,
            enable=args.leader_elect,
            lease_name=args.leader_elect_resource_name,
            namespace=args.leader_elect_resource_namespace,
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period,
        )
    except ElectionError as error:
        parser.error(str(error))
    namespaces = tuple(args.namespace or config.namespaces)
    config = dataclasses.replace(config, namespaces=namespaces)

    import cronfleet.handlers  # noqa: F401, PLC0415  (registers the handlers)

    tune_collector()

    kopf.configure(
        verbose=args.verbose,
        log_format={
            "json": kopf.LogFormat.JSON,
            "plain": kopf.LogFormat.PLAIN,
            "full": kopf.LogFormat.FULL,
        }[args.log_format],
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            memo=kopf.Memo(config=config, election=election_settings),
            liveness_endpoint=args.liveness or None,
            # kopf's default identity asks for the user's name, which a container
            # running as an arbitrary UID (OpenShift) may not have.
            # kopf's Identity is a NewType of str that kopf does not export.
            identity=f"cronfleet@{socket.gethostname()}",  # type: ignore[arg-type]
        )
    )
