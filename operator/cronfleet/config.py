"""Operator configuration, read once from the environment at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_RUNNER_IMAGE = "ghcr.io/cronfleet/cronfleet-runner:0.1.0"


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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ if env is None else env)

        def names(key: str) -> tuple[str, ...]:
            return tuple(item.strip() for item in env.get(key, "").split(",") if item.strip())

        return cls(
            runner_image=env.get("CRONFLEET_RUNNER_IMAGE", DEFAULT_RUNNER_IMAGE),
            runner_pull_policy=env.get("CRONFLEET_RUNNER_PULL_POLICY", "IfNotPresent"),
            known_tasks=frozenset(names("CRONFLEET_KNOWN_TASKS")),
            namespaces=names("CRONFLEET_NAMESPACES"),
            workers=int(env.get("CRONFLEET_WORKERS", "8")),
            metrics_port=int(env.get("CRONFLEET_METRICS_PORT", "8080")),
        )
