"""Pure parts of the real node: its image archive, configuration and safety checks."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from cronfleet_devcluster import node
from cronfleet_devcluster.controlplane import (
    SERVICE_CIDR,
    ControlPlaneError,
    node_kind_from_environment,
)


def test_image_archive_is_a_docker_archive_with_the_program_and_tags(tmp_path: Path) -> None:
    program = tmp_path / "nodeprobe"
    program.write_bytes(b"\x7fELF not really")
    archive = tmp_path / "image.tar"
    tags = (node.PAUSE_IMAGE, node.PROBE_IMAGE)
    node.write_image_archive(program, archive, tags, ["/nodeprobe"])
    with tarfile.open(archive) as image:
        manifest = json.loads(image.extractfile("manifest.json").read())  # type: ignore[union-attr]
        (entry,) = manifest
        assert entry["RepoTags"] == list(tags)
        config = json.loads(image.extractfile(entry["Config"]).read())  # type: ignore[union-attr]
        layer_bytes = image.extractfile(entry["Layers"][0]).read()  # type: ignore[union-attr]
    assert config["config"]["Entrypoint"] == ["/nodeprobe"]
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer_bytes).hexdigest()}"]
    assert node.is_image_archive(archive)


def test_image_archive_is_reproducible(tmp_path: Path) -> None:
    program = tmp_path / "nodeprobe"
    program.write_bytes(b"program")
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    node.write_image_archive(program, first, [node.PAUSE_IMAGE], ["/nodeprobe"])
    node.write_image_archive(program, second, [node.PAUSE_IMAGE], ["/nodeprobe"])
    assert first.read_bytes() == second.read_bytes()


def test_a_root_filesystem_tar_is_not_an_image_archive(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as archive:
        (tmp_path / "hosts").write_text("")
        archive.add(tmp_path / "hosts", "./etc/hosts")
    assert not node.is_image_archive(rootfs)


def test_containerd_never_reaches_a_registry(tmp_path: Path) -> None:
    config = node.containerd_config(tmp_path, tmp_path / "net.d", tmp_path / "hosts")
    assert "restrict_oom_score_adj = true" in config
    assert f'config_path = "{tmp_path / "hosts"}"' in config
    hosts = node.registry_hosts_config()
    assert f'server = "{node.UNREACHABLE_REGISTRY}"' in hosts
    assert node.UNREACHABLE_REGISTRY.startswith("http://127.0.0.1:")


def test_pod_network_has_no_masquerading() -> None:
    config = json.loads(node.cni_config(Path("/ipam")))
    (bridge,) = config["plugins"]
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": node.POD_CIDR, "gateway": node.NODE_ADDRESS}]]


def test_kubelet_gives_pods_no_nameserver_and_fits_this_machine() -> None:
    config = node.kubelet_config(Path("/c.sock"), Path("/root"), Path("/ca.crt"), Path("/pki"))
    assert config["resolvConf"] == ""
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["cgroupsPerQOS"] is False
    assert config["enforceNodeAllocatable"] == []
    assert config["failSwapOn"] is False


def test_kubernetes_service_address_is_the_first_of_the_service_cidr() -> None:
    first = SERVICE_CIDR.split("/")[0].rsplit(".", 1)[0] + ".1"
    assert first == node.API_SERVICE_ADDRESS


def test_real_node_refuses_a_network_with_a_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node, "network_interfaces", lambda: ["lo", "eth0", "cni0", "veth1"])
    with pytest.raises(node.NodeError, match=r"interfaces eth0; run .*netns"):
        node.require_isolated_network()
    monkeypatch.setattr(node, "network_interfaces", lambda: ["lo", "cni0", "vethab12"])
    node.require_isolated_network()


@pytest.mark.parametrize(
    ("value", "kind"), [(None, "agent"), ("", "agent"), ("kubelet", "kubelet")]
)
def test_node_kind_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, kind: str
) -> None:
    if value is None:
        monkeypatch.delenv("CRONFLEET_NODE", raising=False)
    else:
        monkeypatch.setenv("CRONFLEET_NODE", value)
    assert node_kind_from_environment() == kind


def test_unknown_node_kind_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRONFLEET_NODE", "kind")
    with pytest.raises(ControlPlaneError, match=r"CRONFLEET_NODE='kind'.*agent, kubelet"):
        node_kind_from_environment()
