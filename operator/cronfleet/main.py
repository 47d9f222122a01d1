"""``cronfleet-operator``: run the operator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import kopf

from cronfleet.config import OperatorConfig


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
        )
    )
