"""Generate the Schedule CRD from the pydantic models (``make crds``).

The API server needs a *structural* schema: every node typed, no ``$ref``,
no ``anyOf`` for optional values. This module turns the models' JSON schema
into that form and adds what only Kubernetes knows about: defaults that the
API server applies, CEL validations, printer columns and the status
subresource.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from cronfleet.cronrules import cron_rules, starting_deadline_rules, time_zone_rules
from cronfleet.models import GROUP, KIND, PLURAL, VERSION, ScheduleSpec, ScheduleStatus

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = REPO_ROOT / "crds" / f"{PLURAL}.{GROUP}.yaml"
# The Helm chart ships the same bytes.
CHART_CRD_PATH = REPO_ROOT / "charts" / "cronfleet" / "files" / f"{PLURAL}.{GROUP}.yaml"

Schema = dict[str, Any]

_KEPT_KEYWORDS = (
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "format",
    "required",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
)

# Validations the API server enforces at apply time, beyond types and ranges.
_VALIDATIONS: dict[str, list[dict[str, str]]] = {
    "ScheduleSpec": [
        {
            "rule": "(has(self.cron) ? 1 : 0) + (has(self.every) ? 1 : 0) + (has(self.at) ? 1 : 0)"
            " <= 1",
            "message": "set at most one of cron, every and at (none: the Schedule runs only "
            "on run-now)",
        },
        {
            "rule": "!has(self.every) || duration(self.every) >= duration('10s')",
            "message": "every must be at least 10s",
        },
        {
            "rule": "!has(self.startTime) || !has(self.endTime) || self.endTime > self.startTime",
            "message": "endTime must be after startTime",
        },
    ],
    "Upstream": [
        {
            "rule": "!(has(self.on) && has(self.__true__))",
            "message": "after[]: set `on` once (an unquoted `on:` key arrives as `true`)",
        },
        {
            "rule": "!has(self.namespace)",
            "message": "after[].namespace is not allowed: an upstream Schedule must be in the "
            "Schedule's own namespace (cross-namespace chains are refused)",
            "fieldPath": ".namespace",
        },
    ],
    "Backoff": [
        {
            # Written with has(): the API server also checks the `{}` default itself.
            "rule": "!has(self.maxDelaySeconds) || !has(self.initialDelaySeconds) || "
            "self.maxDelaySeconds >= self.initialDelaySeconds",
            "message": "retry.backoff.maxDelaySeconds must be at least initialDelaySeconds",
        }
    ],
}

# Rules that need the object's name, which only the root of the schema sees.
ROOT_VALIDATIONS: list[dict[str, str]] = [
    {
        "rule": "!has(self.spec.after) || self.spec.after.all(u, u.schedule != self.metadata.name)",
        "message": "spec.after names the Schedule itself: a Schedule cannot run after itself",
        "fieldPath": ".spec.after",
    }
]

_ENV_VAR_ITEM: Schema = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "description": "Variable name."},
        "value": {"type": "string", "description": "Literal value; $(VAR) references expand."},
        "valueFrom": {
            "type": "object",
            "description": "Source of the value: secretKeyRef, configMapKeyRef, fieldRef, ...",
            "x-kubernetes-preserve-unknown-fields": True,
        },
    },
    "x-kubernetes-validations": [
        {
            "rule": "!(has(self.value) && has(self.valueFrom))",
            "message": "an env entry sets either value or valueFrom, not both",
        }
    ],
}


def _resolve(node: Any, definitions: dict[str, Schema]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        merged = {**definitions[name], **{k: v for k, v in node.items() if k != "$ref"}}
        resolved = _resolve(merged, definitions)
        if name in _VALIDATIONS:
            resolved["x-kubernetes-validations"] = _VALIDATIONS[name]
        return resolved
    return {key: _resolve(value, definitions) for key, value in node.items()}


def _structural(node: Schema) -> Schema:
    """Reduce one resolved JSON-schema node to what a structural schema allows."""
    any_of = node.get("anyOf")
    if any_of:
        # `X | None` becomes X: absent means unset, and the API server does not
        # store nulls for fields without `nullable`.
        options = [option for option in any_of if option.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {any_of}")
        outer = {key: value for key, value in node.items() if key != "anyOf"}
        node = {**options[0], **outer}
    out: Schema = {key: node[key] for key in _KEPT_KEYWORDS if key in node}
    if node.get("default") is None:
        out.pop("default", None)
    if "exclusiveMinimum" in node:
        out["minimum"] = node["exclusiveMinimum"]
        out["exclusiveMinimum"] = True
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties")
        additional = node.get("additionalProperties")
        if properties:
            out["properties"] = {name: _structural(child) for name, child in properties.items()}
        elif isinstance(additional, dict) and additional:
            out["additionalProperties"] = _structural(additional)
        elif not out.get("x-kubernetes-preserve-unknown-fields"):
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        items = node.get("items")
        out["items"] = _structural(items) if isinstance(items, dict) else {"type": "object"}
        if out["items"].get("type") == "object" and "properties" not in out["items"]:
            out["items"].setdefault("x-kubernetes-preserve-unknown-fields", True)
    if "description" not in out and "title" in node:
        out["description"] = node["title"]
    return out


def model_schema(model: type[Any]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    resolved = _resolve(raw, definitions)
    if model.__name__ in _VALIDATIONS:
        resolved["x-kubernetes-validations"] = _VALIDATIONS[model.__name__]
    return _structural(resolved)


def spec_schema() -> Schema:
    schema = model_schema(ScheduleSpec)
    properties = schema["properties"]
    properties["env"]["items"] = _ENV_VAR_ITEM
    # Refused at apply time as a CronJob would refuse them (cronfleet.cronrules).
    properties["cron"]["x-kubernetes-validations"] = cron_rules()
    properties["timeZone"]["x-kubernetes-validations"] = time_zone_rules()
    properties["startingDeadlineSeconds"]["x-kubernetes-validations"] = starting_deadline_rules()
    return schema


def status_schema() -> Schema:
    return model_schema(ScheduleStatus)


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Schedule", "type": "string", "jsonPath": ".spec.cron"},
    {"name": "Every", "type": "string", "jsonPath": ".spec.every", "priority": 1},
    {"name": "At", "type": "string", "jsonPath": ".spec.at", "priority": 1},
    {"name": "TimeZone", "type": "string", "jsonPath": ".spec.timeZone"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Last Run", "type": "date", "jsonPath": ".status.lastRunTime"},
    # A date column would render a future time as "<invalid>": show the timestamp.
    {"name": "Next Run", "type": "string", "jsonPath": ".status.nextRunTime"},
    {"name": "Retries", "type": "integer", "jsonPath": ".status.retryCount"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Task", "type": "string", "jsonPath": ".spec.task", "priority": 1},
    {"name": "After", "type": "string", "jsonPath": ".spec.after[*].schedule", "priority": 1},
    {
        "name": "Last Result",
        "type": "string",
        "jsonPath": ".status.history[0].result",
        "priority": 1,
    },
]


def render() -> dict[str, Any]:
    spec = spec_schema()
    status = status_schema()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "cronfleet"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["sched"],
                "categories": ["cronfleet"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (
                                "A Schedule runs a task of cronfleet's shared runner image on a "
                                "cron schedule, as a native CronJob, with retries, run history, "
                                "events and metrics."
                            ),
                            "required": ["spec"],
                            "x-kubernetes-validations": ROOT_VALIDATIONS,
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_yaml() -> str:
    header = "# Generated from operator/cronfleet/models.py by `make crds`; do not edit.\n"
    return header + yaml.safe_dump(render(), sort_keys=False, width=100)


def main() -> None:
    text = render_yaml()
    paths = (CRD_PATH, CHART_CRD_PATH)
    if "--check" in sys.argv:
        for path in paths:
            if not path.exists() or path.read_text() != text:
                print(f"{path} is out of date: run `make crds`", file=sys.stderr)
                sys.exit(1)
        return
    for path in paths:
        path.write_text(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
