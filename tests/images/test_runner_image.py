"""The runner image honours the runner contract when run as a restricted pod runs it.

tests/integration/test_runner.py checks the same contract through the local node
agent, which runs the entrypoint as a local process; here it is the built image:
its entrypoint as PID 1, UID 65532, a read-only root filesystem, no capabilities
and the termination-message file the kubelet would mount.
"""

from __future__ import annotations

import json

from cronfleet_devcluster.containerimages import REPO_ROOT
from cronfleet_devcluster.testing import eventually
from tests.images.conftest import (
    RestrictedContainers,
    StartedContainer,
    checkout_sources,
    installed_sources,
)

EXIT_SUCCEEDED = 0
EXIT_RETRYABLE = 1
EXIT_PERMANENT = 2
EXIT_TERMINATED = 143
# The contract's bound on the summary line, newline included.
MAX_SUMMARY_BYTES = 4096


def env(task: str, params: object) -> dict[str, str]:
    return {
        "CRONFLEET_TASK": task,
        "CRONFLEET_PARAMS": json.dumps(params),
        "CRONFLEET_SCHEDULE": "tenant-acme/image-test",
        "CRONFLEET_RUN": "image-test-29123456",
        "CRONFLEET_TRIGGER": "Manual",
        "CRONFLEET_ATTEMPT": "0",
    }


def test_sleep_succeeds_and_writes_its_summary(runner: RestrictedContainers) -> None:
    exited = runner.run(env("sleep", {"seconds": 0}))

    assert exited.code == EXIT_SUCCEEDED, exited
    assert len(exited.termination_message.encode()) <= MAX_SUMMARY_BYTES
    assert exited.summary()["result"] == "Succeeded"
    finished = [event for event in exited.events() if event["event"] == "run.finished"]
    assert [event["exitCode"] for event in finished] == [EXIT_SUCCEEDED]
    assert finished[0]["schedule"] == "tenant-acme/image-test"


def test_unknown_task_fails_permanently(runner: RestrictedContainers) -> None:
    exited = runner.run(env("no-such-task", {}))

    assert exited.code == EXIT_PERMANENT, exited
    summary = exited.summary()
    assert summary["result"] == "Failed"
    assert "no-such-task" in summary["message"]


def test_failing_command_is_retryable_and_runs_as_65532_on_a_read_only_root(
    runner: RestrictedContainers,
) -> None:
    # The program prints its UID, then fails because the root filesystem is read-only.
    exited = runner.run(
        env("command", {"argv": ["sh", "-c", "id -u && touch /cronfleet-was-here"]})
    )

    assert exited.code == EXIT_RETRYABLE, exited
    assert exited.summary()["result"] == "Failed"
    output = {
        (event["stream"], event["line"])
        for event in exited.events()
        if event["event"] == "command.output"
    }
    assert ("stdout", "65532") in output
    assert any(stream == "stderr" and "Read-only file system" in line for stream, line in output), (
        output
    )


def test_sigterm_stops_a_long_sleep_with_143_and_a_summary(
    runner: RestrictedContainers, started: list[StartedContainer]
) -> None:
    container = runner.start(env("sleep", {"seconds": 600}))
    started.append(container)
    eventually(
        lambda: "sleep.waiting" in container.logs(),
        timeout=60,
        what="the sleep task waiting",
    )

    # What the kubelet does at a Job's deadline or a pod's deletion: SIGTERM,
    # then SIGKILL after the grace period (which would be exit 137, not 143).
    container.stop(grace_seconds=10)
    exited = container.wait()

    assert exited.code == EXIT_TERMINATED, exited
    summary = exited.summary()
    assert summary["result"] == "Failed"
    assert summary["message"].startswith("Terminated by SIGTERM"), summary


def test_the_image_holds_this_checkouts_runner(runner_image: str) -> None:
    # A build that reused a stale step would pass every other test with old code.
    assert installed_sources(runner_image, "cronfleet_runner") == checkout_sources(
        REPO_ROOT / "runner-image/cronfleet_runner"
    )
