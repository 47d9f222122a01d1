"""`make e2e`'s driver: where it refuses to run, and that a node that cannot start fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronfleet_devcluster import e2e
from cronfleet_devcluster.controlplane import ControlPlane, ControlPlaneError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_default_tests_exist() -> None:
    for test_file in e2e.DEFAULT_TESTS:
        assert (REPO_ROOT / test_file).is_file(), test_file


def test_refuses_to_run_off_the_real_node(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CRONFLEET_NODE", raising=False)
    assert e2e.main([]) == 2
    assert "CRONFLEET_NODE=kubelet" in capsys.readouterr().err


def test_a_node_that_cannot_start_fails_the_run_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def start(self: ControlPlane, timeout: float = 120.0) -> float:
        raise ControlPlaneError("kubelet exited during start-up; last lines of its log: boom")

    monkeypatch.setenv("CRONFLEET_NODE", "kubelet")
    monkeypatch.setenv("CRONFLEET_E2E_DIR", str(tmp_path))
    monkeypatch.setattr(e2e, "default_image_archives", lambda: (tmp_path / "runner.tar",))
    monkeypatch.setattr(ControlPlane, "start", start)
    monkeypatch.setattr(ControlPlane, "stop", lambda self, grace=10.0: None)
    assert e2e.main([]) == 1
    err = capsys.readouterr().err
    assert "the control plane with the real node did not start" in err
    assert "kubelet exited during start-up" in err


def test_missing_image_archives_fail_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def start(self: ControlPlane, timeout: float = 120.0) -> float:
        raise AssertionError("started without images")

    monkeypatch.setenv("CRONFLEET_NODE", "kubelet")
    monkeypatch.setenv("CRONFLEET_E2E_DIR", str(tmp_path))
    monkeypatch.setattr(e2e, "default_image_archives", tuple)
    monkeypatch.setattr(ControlPlane, "start", start)
    assert e2e.main([]) == 1
    assert "make images" in capsys.readouterr().err
