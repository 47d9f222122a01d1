"""The pure parts of `make images`: names, tags, cache keys and the lock files."""

from __future__ import annotations

import re

import pytest

from cronfleet_devcluster import containerimages
from cronfleet_devcluster.containerimages import (
    IMAGES,
    OPERATOR,
    REPO_ROOT,
    RUNNER,
    ImageBuildError,
    image_reference,
    inputs_digest,
)


def test_images_are_tagged_with_the_charts_repositories_and_the_package_version() -> None:
    assert image_reference(OPERATOR) == "ghcr.io/cronfleet/cronfleet-operator:0.1.0"
    assert image_reference(RUNNER) == "ghcr.io/cronfleet/cronfleet-runner:0.1.0"


def test_the_cache_key_follows_the_base_and_the_build_arguments() -> None:
    key = inputs_digest(RUNNER, "sha256:base", {"PYTHON_IMAGE": "base"})

    assert key == inputs_digest(RUNNER, "sha256:base", {"PYTHON_IMAGE": "base"})
    assert key != inputs_digest(RUNNER, "sha256:other", {"PYTHON_IMAGE": "base"})
    assert key != inputs_digest(RUNNER, "sha256:base", {"PYTHON_IMAGE": "other"})
    assert key != inputs_digest(OPERATOR, "sha256:base", {"PYTHON_IMAGE": "base"})


@pytest.mark.parametrize("spec", IMAGES, ids=lambda spec: spec.name)
def test_every_file_the_dockerfile_uses_is_an_input(spec: containerimages.ImageSpec) -> None:
    dockerfile = (REPO_ROOT / spec.dockerfile).read_text()
    context = REPO_ROOT / spec.context
    used = re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.MULTILINE)
    used += re.findall(r"type=bind,source=([^,\s]+)", dockerfile)
    for sources in used:
        for source in sources.split():
            relative = str((context / source).resolve().relative_to(REPO_ROOT))
            assert any(
                relative == given or relative.startswith(f"{given}/") for given in spec.inputs
            ), f"{spec.dockerfile} uses {relative}, which is not among the cache key's inputs"


@pytest.mark.parametrize("lock", ["operator/requirements.lock", "runner-image/requirements.lock"])
def test_lock_files_pin_every_package_with_hashes(lock: str) -> None:
    lines = (REPO_ROOT / lock).read_text().splitlines()
    text = "\n".join(line for line in lines if line.strip() and not line.startswith("#"))
    requirements = re.split(r"\n(?=[a-z0-9])", text)
    assert requirements
    for requirement in requirements:
        assert re.match(r"^[a-z0-9._-]+==\S+ \\\n", requirement), requirement
        assert "--hash=sha256:" in requirement, requirement


def test_a_missing_program_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda program: None)

    with pytest.raises(ImageBuildError, match=r"apt-get install .*mmdebstrap podman runc"):
        containerimages.ensure_images()
