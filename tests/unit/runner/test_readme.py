"""The runner's README documents every param of every built-in task."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cronfleet_runner.registry import builtin_task_schemas, validate_builtin_params

README = Path(__file__).resolve().parents[3] / "runner-image" / "README.md"


def task_section(task: str) -> str:
    text = README.read_text()
    match = re.search(rf"^### `{task}`.*?(?=^## |^### |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"runner-image/README.md has no '### `{task}`' section"
    return match.group(0)


@pytest.mark.parametrize("task", sorted(builtin_task_schemas()))
def test_every_param_is_in_the_tasks_table_and_there_is_an_example(task: str) -> None:
    section = task_section(task)
    documented = set(re.findall(r"^\| `([A-Za-z]+)` \|", section, re.MULTILINE))
    assert documented == set(builtin_task_schemas()[task]["properties"])
    assert "kind: Schedule" in section and f"task: {task}" in section


def test_the_example_schedules_have_params_the_runner_accepts() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.DOTALL)
    documents = [yaml.safe_load(block) for block in blocks]
    # Other manifests (the egress NetworkPolicy) are not Schedules.
    schedules = [d for d in documents if d.get("kind") == "Schedule"]
    assert any(d.get("kind") == "NetworkPolicy" for d in documents)
    builtin = [s for s in schedules if s["spec"]["task"] in builtin_task_schemas()]
    assert {s["spec"]["task"] for s in builtin} == set(builtin_task_schemas())
    for schedule in builtin:
        assert schedule["apiVersion"] == "cronfleet.io/v1alpha1"
        assert schedule["kind"] == "Schedule"
        spec = schedule["spec"]
        assert validate_builtin_params(spec["task"], spec["params"]) is None, spec


def test_the_front_readme_lists_every_task_and_param() -> None:
    front = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = front[front.index("## Tasks") : front.index("## Performance")]
    for task, schema in builtin_task_schemas().items():
        row = next(line for line in section.splitlines() if line.startswith(f"| `{task}` |"))
        for param in schema["properties"]:
            assert f"`{param}`" in row, f"{task}.{param} missing from README.md"
