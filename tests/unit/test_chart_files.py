"""The chart ships the CRD exactly as crds/ has it, and its values file parses."""

from __future__ import annotations

from pathlib import Path

import yaml

from cronfleet.leaderelection import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RETRY_PERIOD,
    ElectionSettings,
)

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


def test_chart_election_defaults_are_the_operators() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    election = values["leaderElection"]
    assert values["replicaCount"] == 1 and election["enabled"] is False
    assert (election["leaseDuration"], election["renewDeadline"], election["retryPeriod"]) == (
        DEFAULT_LEASE_DURATION,
        DEFAULT_RENEW_DEADLINE,
        DEFAULT_RETRY_PERIOD,
    )
    # The chart's defaults pass the operator's own checks.
    ElectionSettings(
        namespace="cronfleet-system",
        identity="cronfleet-0_abc",
        lease_duration=election["leaseDuration"],
        renew_deadline=election["renewDeadline"],
        retry_period=election["retryPeriod"],
    )
