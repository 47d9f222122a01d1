"""A plugin module whose import the registry tests watch for."""

from __future__ import annotations

from cronfleet_runner import Outcome, RunContext, TaskParams, task


class LazyParams(TaskParams):
    pass


@task("lazy", params=LazyParams)
def lazy(params: LazyParams, context: RunContext) -> Outcome:
    """Do nothing, late."""
    return Outcome("done")
