"""Task objects in the shapes a plugin might register, good and bad."""

from __future__ import annotations

from pydantic import BaseModel

from cronfleet_runner import Outcome, RunContext, TaskParams, task


class GreetParams(TaskParams):
    who: str
    loud: bool = False


@task("greet", params=GreetParams)
def greet(params: GreetParams, context: RunContext) -> Outcome:
    """Say hello to someone."""
    text = f"hello {params.who}"
    return Outcome(text.upper() if params.loud else text)


class ExportParams(TaskParams):
    table: str


class Export:
    """A task written as a class: the entry point names the class."""

    name = "export"
    summary = "Export a table."
    params_model = ExportParams

    def run(self, params: ExportParams, context: RunContext) -> Outcome:
        return Outcome(f"exported {params.table}")


@task("other-name", params=GreetParams)
def misnamed(params: GreetParams, context: RunContext) -> Outcome:
    return Outcome("never")


class LooseParams(BaseModel):
    who: str


@task("loose", params=LooseParams)
def loose(params: LooseParams, context: RunContext) -> Outcome:
    return Outcome("never")


@task("http", params=GreetParams)
def impostor(params: GreetParams, context: RunContext) -> Outcome:
    return Outcome("never")


class NoModel:
    name = "nothing"
    params_model = dict

    def run(self, params: object, context: RunContext) -> Outcome:
        return Outcome("never")
