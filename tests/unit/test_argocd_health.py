"""The Argo CD health check for Schedules, run by a real Lua 5.1 (gopher-lua's language).

The cases are in ``fixtures/argocd/health_test.yaml``, in the format of Argo
CD's own ``resource_customizations/*/*/health_test.yaml``, and the script is
run the way Argo CD runs a check from argocd-cm: the object as the global
``obj``, only the base and table libraries, and the returned table read as a
``HealthStatus``, an unknown status becoming ``Unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa.lua51 import LuaError, LuaRuntime

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "charts" / "cronfleet" / "files" / "argocd-health.lua"
CASES_DIR = Path(__file__).resolve().parent / "fixtures" / "argocd"

# Argo CD's util/lua VM: custom checks get these statuses, anything else is
# reported as Unknown with this message.
HEALTH_STATUSES = frozenset(
    {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
)
INVALID_HEALTH_STATUS = "Lua returned an invalid health status"

# Argo CD opens no standard library for a check configured in argocd-cm
# (useOpenLibs defaults to false) beyond base, package, table and a reduced
# os; strings then have no methods either. The sandbox offers the same.
RUN_LIKE_ARGO_CD = """
function(source, obj)
  local chunk, problem = loadstring(source, "=argocd-health.lua")
  if chunk == nil then
    error(problem)
  end
  local env = {obj = obj, table = table}
  local base = {"assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall",
    "print", "rawequal", "rawget", "rawset", "select", "setmetatable", "tonumber",
    "tostring", "type", "unpack", "xpcall", "_VERSION"}
  for _, name in ipairs(base) do
    env[name] = _G[name]
  end
  env._G = env
  setfenv(chunk, env)
  getmetatable("").__index = nil
  return chunk()
end
"""


def health(obj: Mapping[str, Any], script: str | None = None) -> dict[str, str]:
    """What Argo CD would report for ``obj``: ``{"status": ..., "message": ...}``."""
    runtime = LuaRuntime(unpack_returned_tuples=False)
    run = runtime.eval(RUN_LIKE_ARGO_CD)
    source = script if script is not None else SCRIPT.read_text()
    returned = run(source, runtime.table_from(dict(obj), recursive=True))
    if runtime.eval("type")(returned) != "table":
        raise AssertionError(f"the check returned {returned!r}, not a table")
    result = {str(key): value for key, value in returned.items()}
    if result.get("status") not in HEALTH_STATUSES:
        return {"status": "Unknown", "message": INVALID_HEALTH_STATUS}
    return {"status": str(result["status"]), "message": str(result.get("message") or "")}


def load_cases() -> list[tuple[str, dict[str, str]]]:
    document = yaml.safe_load((CASES_DIR / "health_test.yaml").read_text())
    return [(case["inputPath"], case["healthStatus"]) for case in document["tests"]]


CASES = load_cases()


@pytest.mark.parametrize(("input_path", "expected"), CASES, ids=[path for path, _ in CASES])
def test_health_test_yaml(input_path: str, expected: dict[str, str]) -> None:
    obj = yaml.safe_load((CASES_DIR / input_path).read_text())
    assert health(obj) == expected


def test_every_fixture_has_a_case() -> None:
    listed = {path for path, _ in CASES}
    on_disk = {f"testdata/{path.name}" for path in (CASES_DIR / "testdata").glob("*.yaml")}
    landed = {f"../{path.name}" for path in CASES_DIR.parent.glob("landed-*.json")}
    assert listed == on_disk | landed


def test_reconciling_true_is_progressing() -> None:
    obj = yaml.safe_load((CASES_DIR / "testdata" / "active.yaml").read_text())
    reconciling = next(c for c in obj["status"]["conditions"] if c["type"] == "Reconciling")
    reconciling.update(status="True", reason="Applying", message="applying the CronJob")
    assert health(obj) == {"status": "Progressing", "message": "applying the CronJob"}


def test_stale_ready_condition_is_progressing() -> None:
    obj = yaml.safe_load((CASES_DIR / "testdata" / "active-landed.yaml").read_text())
    obj["metadata"]["generation"] = 2
    obj["status"]["observedGeneration"] = 2
    assert health(obj) == {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 2 (Ready is for generation 1)",
    }


def test_unknown_phase_follows_ready() -> None:
    obj = yaml.safe_load((CASES_DIR / "testdata" / "active-landed.yaml").read_text())
    obj["status"]["phase"] = "Draining"
    assert health(obj)["status"] == "Healthy"
    obj["status"]["conditions"][0]["status"] = "False"
    obj["status"]["conditions"][0]["message"] = "draining the queue failed"
    assert health(obj) == {"status": "Degraded", "message": "draining the queue failed"}


def test_sandbox_has_no_string_library() -> None:
    """The harness must be as strict as Argo CD, or the tests would pass a script it rejects."""
    with pytest.raises(LuaError, match="attempt to index global 'string'"):
        health({}, 'return {status = string.lower("Healthy")}')
    with pytest.raises(LuaError, match="attempt to index a string value"):
        health({}, 'return {status = ("Healthy"):sub(1)}')


def test_an_unknown_status_is_reported_as_unknown() -> None:
    assert health({}, 'return {status = "Fine"}') == {
        "status": "Unknown",
        "message": INVALID_HEALTH_STATUS,
    }
