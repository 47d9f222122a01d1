"""The committed CRD is what the models generate, and it is structural."""

from __future__ import annotations

from typing import Any

from cronfleet.crd import CRD_PATH, render, render_yaml


def test_committed_crd_matches_the_models() -> None:
    assert CRD_PATH.read_text() == render_yaml(), "crds/ is out of date: run `make crds`"


def walk(node: Any, path: str = "") -> list[str]:
    problems = []
    if isinstance(node, dict):
        if "$ref" in node or "anyOf" in node or "title" in node:
            problems.append(path)
        nested = "properties" in node or "items" in node or "additionalProperties" in node
        if nested and "type" not in node:
            problems.append(f"{path} has no type")
        for key, value in node.items():
            problems += walk(value, f"{path}.{key}")
    return problems


def test_schema_is_structural_and_described() -> None:
    schema = render()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert walk(schema) == []
    spec = schema["properties"]["spec"]["properties"]
    missing = [name for name, field in spec.items() if not field.get("description")]
    assert missing == []
    retry = spec["retry"]["properties"]
    assert all(field.get("description") for field in retry.values())
