"""The operator image starts as its default user, with the restricted pod's other settings."""

from __future__ import annotations

import subprocess

from cronfleet_devcluster.containerimages import REPO_ROOT, podman, ulimit_options
from tests.images.conftest import (
    POD_USER,
    RESTRICTED_POD,
    RestrictedContainers,
    checkout_sources,
    installed_sources,
)


def test_operator_image_runs_as_65532_by_default(operator_image: str) -> None:
    user = subprocess.run(
        podman("image", "inspect", "--format", "{{.Config.User}}", operator_image),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    assert user == "65532:65532"


def test_the_operators_user_has_a_name(operator_image: str) -> None:
    # kopf's peering identity is getpass.getuser(): as UID 65532 with no passwd
    # entry the operator died at start-up under a real kubelet (`make e2e`).
    completed = subprocess.run(
        podman(
            "run",
            "--rm",
            *POD_USER,
            *RESTRICTED_POD,
            *ulimit_options(),
            "--entrypoint",
            "python",
            operator_image,
            "-c",
            "import getpass; print(getpass.getuser())",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert (completed.returncode, completed.stdout.strip()) == (0, "nonroot"), completed.stderr


def test_operator_help_exits_0(operator: RestrictedContainers) -> None:
    exited = operator.run({}, args=["--help"])

    assert exited.code == 0, exited
    assert "usage" in exited.stdout.lower(), exited.stdout


def test_the_image_holds_this_checkouts_operator_and_runner(operator_image: str) -> None:
    assert installed_sources(operator_image, "cronfleet") == checkout_sources(
        REPO_ROOT / "operator/cronfleet"
    )
    assert installed_sources(operator_image, "cronfleet_runner") == checkout_sources(
        REPO_ROOT / "runner-image/cronfleet_runner"
    )
