"""``cronfleet-operator``: run the operator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import threading

import kopf

from cronfleet.config import OperatorConfig

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
    args = parser.parse_args(argv)
    allow_deep_objects()
    config = OperatorConfig.from_env()
    namespaces = tuple(args.namespace or config.namespaces)

    import cronfleet.handlers  # noqa: F401, PLC0415  (registers the handlers)

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
            memo=kopf.Memo(config=config),
            liveness_endpoint=args.liveness or None,
            # kopf's default identity asks for the user's name, which a container
            # running as an arbitrary UID (OpenShift) may not have.
            # kopf's Identity is a NewType of str that kopf does not export.
            identity=f"cronfleet@{socket.gethostname()}",  # type: ignore[arg-type]
        )
    )
