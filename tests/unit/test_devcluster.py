"""Pure parts of the local control plane: image mapping, env expansion, versions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronfleet_devcluster.agent import expand, field_value
from cronfleet_devcluster.binaries import version_ldflags
from cronfleet_devcluster.images import ImageCatalogue, UnknownImageError, repository_of


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("busybox", "busybox"),
        ("busybox:1.36", "busybox"),
        ("ghcr.io/acme/cronfleet-runner:0.1.0", "cronfleet-runner"),
        ("registry:5000/team/cronfleet-runner@sha256:abc", "cronfleet-runner"),
        ("registry:5000/team/cronfleet-runner:1.2@sha256:abc", "cronfleet-runner"),
    ],
)
def test_repository_of(image: str, repository: str) -> None:
    assert repository_of(image) == repository


def test_container_command_and_args_override_like_a_runtime() -> None:
    catalogue = ImageCatalogue.default()
    runner = catalogue.argv({"image": "cronfleet-runner:1"})
    assert runner[0].endswith("/cronfleet-runner") and len(runner) == 1
    with_args = catalogue.argv({"image": "cronfleet-runner:1", "args": ["--list"]})
    assert with_args[1:] == ["--list"]
    shell = catalogue.argv({"image": "busybox", "command": ["sh", "-c", "exit 3"]})
    assert shell[0].endswith("/sh") and shell[1:] == ["-c", "exit 3"]


def test_unknown_image_names_what_can_run() -> None:
    with pytest.raises(UnknownImageError, match=r"nginx.*busybox.*cronfleet-runner"):
        ImageCatalogue.default().argv({"image": "nginx"})


def test_expand_follows_kubelet_rules() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("cost $5", env) == "cost $5"


@given(st.text(alphabet=st.characters(blacklist_characters="$")))
def test_expand_leaves_text_without_references_alone(text: str) -> None:
    assert expand(text, {"A": "1"}) == text


def test_field_refs() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"}},
        "spec": {"nodeName": "n"},
    }
    assert field_value(pod, "metadata.name", "127.1.0.7") == "p"
    assert field_value(pod, "metadata.labels['app']", "127.1.0.7") == "x"
    assert field_value(pod, "spec.nodeName", "127.1.0.7") == "n"
    assert field_value(pod, "status.podIP", "127.1.0.7") == "127.1.0.7"
    assert field_value(pod, "status.hostIP", "127.1.0.7") == "127.0.0.1"


def test_version_ldflags_set_the_release() -> None:
    flags = version_ldflags("v1.34.4")
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in flags
    assert "-X k8s.io/component-base/version.gitMinor=34" in flags
