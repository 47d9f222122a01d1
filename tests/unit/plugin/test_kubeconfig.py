"""Loading the user's kubeconfig as kubectl does: files, contexts, namespaces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from cronfleet.plugin.kubeconfig import PluginError, kubeconfig_paths, load_session


def kubeconfig(path: Path, contexts: dict[str, str | None], current: str, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {
                        "name": name,
                        "context": {"cluster": "c", "user": "u"}
                        | ({"namespace": ns} if ns else {}),
                    }
                    for name, ns in contexts.items()
                ],
                "current-context": current,
            }
        )
    )
    return path


def test_paths_follow_kubectl_precedence() -> None:
    env = {"KUBECONFIG": os.pathsep.join(["/a", "", "/b"])}
    assert kubeconfig_paths("/flag", env) == ["/flag"]
    assert kubeconfig_paths(None, env) == ["/a", "/b"]
    assert kubeconfig_paths(None, {}) == [os.path.expanduser("~/.kube/config")]


def test_the_current_contexts_namespace_and_server(tmp_path: Path) -> None:
    config = kubeconfig(
        tmp_path / "k", {"dev": "team-a", "prod": None}, "dev", "https://127.0.0.1:1"
    )
    session = load_session(str(config))
    assert (session.context, session.namespace) == ("dev", "team-a")
    assert session.api_client.configuration.host == "https://127.0.0.1:1"


def test_context_and_namespace_flags_win(tmp_path: Path) -> None:
    config = kubeconfig(
        tmp_path / "k", {"dev": "team-a", "prod": None}, "dev", "https://127.0.0.1:1"
    )
    assert load_session(str(config), context="prod").namespace == "default"
    assert load_session(str(config), context="prod", namespace="x").namespace == "x"


def test_several_files_in_kubeconfig_are_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kubeconfig(tmp_path / "a", {"dev": "team-a"}, "dev", "https://127.0.0.1:1")
    second = kubeconfig(tmp_path / "b", {"other": "team-b"}, "other", "https://127.0.0.1:2")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(second)]))
    assert load_session(context="other").namespace == "team-b"
    # The first file's current-context wins, as in kubectl.
    assert load_session().context == "dev"


def test_an_unknown_context_lists_the_known_ones(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "k", {"dev": None, "prod": None}, "dev", "https://127.0.0.1:1")
    with pytest.raises(PluginError, match=r"context .staging. is not in the kubeconfig.*dev, prod"):
        load_session(str(config), context="staging")


def test_a_missing_kubeconfig_flag_is_named(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"--kubeconfig .*no such file"):
        load_session(str(tmp_path / "absent"))


def test_no_kubeconfig_outside_a_pod_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(PluginError, match="no kubeconfig found"):
        load_session()


def test_a_failing_exec_credential_plugin_stops_with_its_error(tmp_path: Path) -> None:
    helper = tmp_path / "helper"
    helper.write_text("#!/bin/sh\necho 'session expired: run login' >&2\nexit 4\n")
    helper.chmod(0o755)
    config = kubeconfig(tmp_path / "k", {"dev": None}, "dev", "https://127.0.0.1:1")
    loaded = yaml.safe_load(config.read_text())
    loaded["users"] = [
        {
            "name": "u",
            "user": {
                "exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(helper)}
            },
        }
    ]
    config.write_text(yaml.safe_dump(loaded))
    with pytest.raises(PluginError) as failed:
        load_session(str(config))
    assert str(failed.value) == (
        f"cannot get credentials for user 'u' of the kubeconfig ({config}): "
        "exec: process returned 4. session expired: run login"
    )
