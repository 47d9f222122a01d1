"""Constrained strings that several tasks' params share."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

ENV_VAR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ENV_VAR_NAME = re.compile(ENV_VAR_NAME_PATTERN)


def _env_var_name(name: str) -> str:
    if not _ENV_VAR_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not an environment variable name: use letters, digits and "
            "underscores, not starting with a digit"
        )
    return name


EnvVarName = Annotated[
    str,
    AfterValidator(_env_var_name),
    WithJsonSchema({"type": "string", "pattern": ENV_VAR_NAME_PATTERN}),
]
