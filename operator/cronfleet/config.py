"""Operator configuration, read once from the environment at start-up."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from cronfleet.metricsauth import MetricsAuth, metrics_auth

DEFAULT_RUNNER_IMAGE = "ghcr.io/cronfleet/cronfleet-runner:0.1.0"
# Which run events a Schedule gets: all of them, or only those of runs that
# fail, cannot start or are missed (RunStarted and RunSucceeded, two requests
# per run, are left out: the history and the metrics have them).
RUN_EVENTS = ("all", "failures")


@dataclass(frozen=True)
class OperatorConfig:
    runner_image: str = DEFAULT_RUNNER_IMAGE
    runner_pull_policy: str = "IfNotPresent"
    # Task names Schedules may use; empty means "the runner's built-in tasks".
    known_tasks: frozenset[str] = field(default_factory=frozenset)
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    workers: int = 8
    metrics_port: int = 8080
    # The runner image's numeric non-root user.
    runner_uid: int = 65532
    # Addresses the http task may not connect to, passed to every run as
    # CRONFLEET_HTTP_DENY_CIDRS: CIDRs added to the runner's built-in list of
    # link-local and cloud metadata addresses (e.g. the cluster's pod and
    # service CIDRs), "none" to drop that list, "default" for it alone.
    http_deny_cidrs: str = "default"
    # Who may read /metrics: anyone who reaches the port (none), or the callers
    # the Kubernetes API allows, over HTTPS (kubernetes; the chart's default).
    metrics_auth: MetricsAuth = MetricsAuth.NONE
    # The mounted certificate and key /metrics is served with under
    # kubernetes auth; empty: a self-signed one made at start.
    metrics_cert_file: str = ""
    metrics_key_file: str = ""
    run_events: str = "all"  # one of RUN_EVENTS

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ if env is None else env)

        def names(key: str) -> tuple[str, ...]:
            return tuple(item.strip() for item in env.get(key, "").split(",") if item.strip())

        cert_file, key_file = metrics_tls_files(env)
        return cls(
            runner_image=env.get("CRONFLEET_RUNNER_IMAGE", DEFAULT_RUNNER_IMAGE),
            runner_pull_policy=env.get("CRONFLEET_RUNNER_PULL_POLICY", "IfNotPresent"),
            known_tasks=frozenset(names("CRONFLEET_KNOWN_TASKS")),
            namespaces=names("CRONFLEET_NAMESPACES"),
            workers=int(env.get("CRONFLEET_WORKERS", "8")),
            metrics_port=int(env.get("CRONFLEET_METRICS_PORT", "8080")),
            http_deny_cidrs=http_deny_cidrs(env.get("CRONFLEET_HTTP_DENY_CIDRS", "")),
            metrics_auth=metrics_auth(env.get("CRONFLEET_METRICS_AUTH", "")),
            metrics_cert_file=cert_file,
            metrics_key_file=key_file,
            run_events=run_events(env.get("CRONFLEET_RUN_EVENTS", "")),
        )


def run_events(text: str) -> str:
    """The run-events setting; a bad one stops the operator at start-up."""
    value = text.strip().lower() or "all"
    if value not in RUN_EVENTS:
        raise ValueError(
            f"CRONFLEET_RUN_EVENTS is {text!r}: use 'all' (every run's events) or 'failures' "
            "(no RunStarted or RunSucceeded)"
        )
    return value


def metrics_tls_files(env: dict[str, str]) -> tuple[str, str]:
    """The certificate and key paths for /metrics: both or neither."""
    cert = env.get("CRONFLEET_METRICS_CERT_FILE", "").strip()
    key = env.get("CRONFLEET_METRICS_KEY_FILE", "").strip()
    if bool(cert) != bool(key):
        given, missing = (
            ("CRONFLEET_METRICS_CERT_FILE", "CRONFLEET_METRICS_KEY_FILE")
            if cert
            else ("CRONFLEET_METRICS_KEY_FILE", "CRONFLEET_METRICS_CERT_FILE")
        )
        raise ValueError(
            f"{given} is set ({cert or key!r}) but {missing} is not: "
            "set both (a mounted certificate and its key) or neither (a self-signed one)"
        )
    return cert, key


def http_deny_cidrs(text: str) -> str:
    """The deny-list setting as the runners get it; a bad one stops the operator at start-up.

    Checked here so that a typo fails once, loudly, instead of failing every
    http run of the cluster (the runner refuses to run with a list it cannot
    read). The runner package is optional beside the operator, so the check
    is repeated here; a unit test keeps it in step with the runner's parser.
    """
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        return "default"
    keywords = {item.lower() for item in items} & {"none", "default"}
    if len(keywords) == 2:
        raise ValueError(
            f"CRONFLEET_HTTP_DENY_CIDRS cannot contain both 'none' and 'default' (got {text!r})"
        )
    for item in items:
        if item.lower() in keywords:
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as error:
            raise ValueError(
                "CRONFLEET_HTTP_DENY_CIDRS should be comma-separated CIDRs such as "
                f"10.96.0.0/12, 'default' or 'none'; {item!r} is none of these ({error})"
            ) from error
    return ",".join(items)
