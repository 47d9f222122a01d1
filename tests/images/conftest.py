"""Run the built images with podman as a restricted pod runs them.

`make images-test` builds the images first (`make images`); the fixtures reuse
them, or build them when run on their own. The flags below are what the
restricted Pod Security profile and the chart ask of a pod: a non-root numeric
UID, a read-only root filesystem with an emptyDir at /tmp, no capabilities, no
privilege escalation; and no network, so nothing a test runs can leave the
machine. The termination-message file is a host file mounted at
/dev/termination-log, as the kubelet mounts one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cronfleet_devcluster.containerimages import (
    OPERATOR,
    RUNNER,
    ImageSpec,
    ensure_images,
    podman,
    ulimit_options,
)

# What the chart's pods set; the image's own USER is 65532:65532 as well.
POD_USER = ("--user", "65532:65532")
RESTRICTED_POD = (
    "--read-only",
    # Only /tmp is writable, as with the chart's emptyDir; podman would
    # otherwise add tmpfs mounts at /run and /var/tmp too.
    "--read-only-tmpfs=false",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--network",
    "none",
    # A kubelet adds no passwd entry for the pod's UID; podman would, and so
    # hide an image whose user has none.
    "--passwd=false",
)
TERMINATION_LOG = "/dev/termination-log"
RUN_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Exited:
    code: int
    stdout: str
    stderr: str
    termination_message: str

    def summary(self) -> dict[str, Any]:
        assert self.termination_message.endswith("\n"), self.termination_message
        assert self.termination_message.count("\n") == 1, self.termination_message
        parsed = json.loads(self.termination_message)
        assert isinstance(parsed, dict)
        return parsed

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


class RestrictedContainers:
    """Starts containers of one image with the restricted pod's settings."""

    def __init__(self, reference: str, directory: Path, image_user: bool = False) -> None:
        self.reference = reference
        self.directory = directory
        # True: run as the image's USER, to show the image alone is non-root.
        self.image_user = image_user

    def termination_log(self) -> Path:
        path = self.directory / f"termination-log-{uuid.uuid4().hex[:8]}"
        path.touch()
        # The kubelet makes the file writable for any UID the container runs as.
        path.chmod(0o666)
        return path

    def run_options(self, env: dict[str, str], termination_log: Path) -> list[str]:
        environment = [option for k, v in env.items() for option in ("--env", f"{k}={v}")]
        return [
            *(() if self.image_user else POD_USER),
            *RESTRICTED_POD,
            *ulimit_options(),
            "--volume",
            f"{termination_log}:{TERMINATION_LOG}",
            *environment,
        ]

    def run(self, env: dict[str, str], args: Sequence[str] = ()) -> Exited:
        termination_log = self.termination_log()
        completed = subprocess.run(
            podman("run", "--rm", *self.run_options(env, termination_log), self.reference, *args),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
        return Exited(
            completed.returncode,
            completed.stdout,
            completed.stderr,
            termination_log.read_text(),
        )

    def start(self, env: dict[str, str]) -> StartedContainer:
        termination_log = self.termination_log()
        name = f"cronfleet-images-test-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            podman(
                "run",
                "--detach",
                "--name",
                name,
                *self.run_options(env, termination_log),
                self.reference,
            ),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=True,
        )
        return StartedContainer(name, termination_log)


@dataclass(frozen=True)
class StartedContainer:
    name: str
    termination_log: Path

    def logs(self) -> str:
        return subprocess.run(
            podman("logs", self.name),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=True,
        ).stdout

    def stop(self, grace_seconds: int) -> None:
        subprocess.run(
            podman("stop", "--time", str(grace_seconds), self.name),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=True,
        )

    def wait(self) -> Exited:
        waited = subprocess.run(
            podman("wait", self.name),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=True,
        )
        return Exited(int(waited.stdout.strip()), self.logs(), "", self.termination_log.read_text())

    def remove(self) -> None:
        subprocess.run(podman("rm", "--force", self.name), capture_output=True, check=False)


def _built(spec: ImageSpec) -> str:
    if shutil.which("podman") is None:
        pytest.fail("the image tests need podman: apt-get install -y podman runc mmdebstrap")
    [image] = ensure_images(specs=[spec])
    return image.reference


@pytest.fixture(scope="session")
def runner_image() -> str:
    return _built(RUNNER)


@pytest.fixture(scope="session")
def operator_image() -> str:
    return _built(OPERATOR)


@pytest.fixture
def runner(runner_image: str, tmp_path: Path) -> RestrictedContainers:
    return RestrictedContainers(runner_image, tmp_path)


@pytest.fixture
def operator(operator_image: str, tmp_path: Path) -> RestrictedContainers:
    return RestrictedContainers(operator_image, tmp_path, image_user=True)


@pytest.fixture
def started(runner: RestrictedContainers) -> Iterator[list[StartedContainer]]:
    """Containers a test starts in the background, removed after it."""
    containers: list[StartedContainer] = []
    yield containers
    for container in containers:
        container.remove()


# Prints {relative path: sha256} of an installed package's .py files.
_HASH_PACKAGE = """
import hashlib, importlib, json, pathlib, sys
root = pathlib.Path(importlib.import_module(sys.argv[1]).__file__).parent
print(json.dumps({
    str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
    for path in sorted(root.rglob("*.py"))
}))
"""


def installed_sources(reference: str, package: str) -> dict[str, str]:
    completed = subprocess.run(
        podman(
            "run",
            "--rm",
            *RESTRICTED_POD,
            *ulimit_options(),
            "--entrypoint",
            "python3",
            reference,
            "-c",
            _HASH_PACKAGE,
            package,
        ),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=True,
    )
    hashes: dict[str, str] = json.loads(completed.stdout)
    return hashes


def checkout_sources(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*.py"))
    }
