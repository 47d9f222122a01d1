"""An installed-looking plugin distribution, written into a directory for sys.path.

importlib.metadata finds ``*.dist-info`` directories on sys.path exactly as
it finds those pip writes, so this tests plugin discovery for real.
"""

from __future__ import annotations

from pathlib import Path

PLUGIN_MODULE = '''
from cronfleet_runner import Outcome, PermanentFailure, RunContext, TaskParams, task


class ReportParams(TaskParams):
    report: str
    recipients: list[str] = []


@task("acme-report", params=ReportParams)
def report(params: ReportParams, context: RunContext) -> Outcome:
    """Send one of ACME's reports by e-mail."""
    if params.report != "weekly":
        raise PermanentFailure(f"params.report: there is no report {params.report!r}.")
    context.log.info("acme.report.sent", recipients=len(params.recipients))
    return Outcome(f"sent {params.report} to {len(params.recipients)}", {"sent": True})
'''


def write_fake_distribution(root: Path) -> Path:
    """A distribution ``acme-cronfleet-tasks`` registering the task ``acme-report``."""
    package = root / "acme_cronfleet_tasks"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN_MODULE)
    info = root / "acme_cronfleet_tasks-1.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-cronfleet-tasks\nVersion: 1.2.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[cronfleet.tasks]\nacme-report = acme_cronfleet_tasks:report\n"
    )
    return root
