"""The krew manifest template: valid once a release fills it in, and names our binary."""

from __future__ import annotations

import re
import string
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[3]
TEMPLATE = ROOT / "plugins" / "krew" / "cronfleet.yaml"


def filled(version: str, sha256: str) -> dict[str, Any]:
    text = string.Template(TEMPLATE.read_text()).substitute(VERSION=version, SHA256=sha256)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_the_template_parses_and_marks_what_a_release_fills_in() -> None:
    raw = yaml.safe_load(TEMPLATE.read_text())
    assert raw["kind"] == "Plugin" and raw["metadata"]["name"] == "cronfleet"
    [platform] = raw["spec"]["platforms"]
    assert platform["sha256"] == "${SHA256}"
    assert "${VERSION}" in platform["uri"] and raw["spec"]["version"] == "v${VERSION}"
    placeholders = set(re.findall(r"\$\{(\w+)\}", TEMPLATE.read_text()))
    assert placeholders == {"VERSION", "SHA256"}


def test_the_binary_is_the_packages_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    manifest = filled("0.2.0", "a" * 64)
    [platform] = manifest["spec"]["platforms"]
    assert platform["bin"] == "kubectl-cronfleet"
    assert scripts[platform["bin"]] == "cronfleet.plugin.cli:main"
    # krew runs `kubectl <name>` as the binary kubectl-<name>.
    assert platform["bin"] == f"kubectl-{manifest['metadata']['name']}"
    assert {item["from"] for item in platform["files"]} >= {platform["bin"]}


def test_a_filled_in_manifest_has_what_krew_checks() -> None:
    manifest = filled("0.2.0", "0123456789abcdef" * 4)
    spec = manifest["spec"]
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", spec["version"])
    [platform] = spec["platforms"]
    assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"])
    assert platform["uri"] == (
        "https://github.com/cronfleet/cronfleet/releases/download/v0.2.0/"
        "kubectl-cronfleet-v0.2.0.tar.gz"
    )
    assert spec["shortDescription"] and len(spec["shortDescription"]) <= 50
