"""Entrypoint of the shared runner image.

Only the exit-code contract lives here for now: the task registry and the
built-in tasks arrive with the runner's own work.
"""

from __future__ import annotations

import json
import os
import sys

EXIT_PERMANENT = 2


def main() -> None:
    task = os.environ.get("CRONFLEET_TASK", "")
    path = os.environ.get("CRONFLEET_TERMINATION_MESSAGE_PATH", "/dev/termination-log")
    message = f"unknown task {task!r}: this runner has no tasks yet"
    summary = json.dumps({"result": "Failed", "message": message})
    try:
        with open(path, "w", encoding="utf-8") as sink:
            sink.write(summary + "\n")
    except OSError:
        pass
    print(summary, flush=True)
    sys.exit(EXIT_PERMANENT)
