"""The chart ships the CRD exactly as crds/ has it, and its values file parses."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "cronfleet"


def test_chart_crd_is_byte_identical_to_crds() -> None:
    shipped = (CHART / "files" / "schedules.cronfleet.io.yaml").read_bytes()
    assert shipped == (ROOT / "crds" / "schedules.cronfleet.io.yaml").read_bytes(), (
        "charts/cronfleet/files/ differs from crds/: run `make crds`"
    )


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart["name"] == "cronfleet" and chart["apiVersion"] == "v2"
    assert values["watchNamespaces"] == [] and values["crds"]["install"] is True
