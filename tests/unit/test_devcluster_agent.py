"""The node agent's kubelet rules: grace periods, back-off, pod addresses, container logs."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronfleet_devcluster.agent import catches_sigterm, grace_period_seconds, should_restart
from cronfleet_devcluster.agentlogs import (
    InstanceLog,
    LogOptions,
    LogRequestError,
    format_record,
    instance_for,
    keep_last_instances,
    parse_record,
    parse_timestamp,
    stream_log,
    timestamp,
)
from cronfleet_devcluster.backoff import Backoff, format_duration
from cronfleet_devcluster.podips import PodAddresses, PodRangeError

# -- grace period and SIGTERM ---------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "spec", "grace"),
    [
        ({}, {}, 30.0),
        ({}, {"terminationGracePeriodSeconds": 5}, 5.0),
        ({"deletionGracePeriodSeconds": 3}, {"terminationGracePeriodSeconds": 60}, 3.0),
        # The kubelet never waits less than 2 s, even when told 0.
        ({"deletionGracePeriodSeconds": 0}, {"terminationGracePeriodSeconds": 5}, 2.0),
        ({}, {"terminationGracePeriodSeconds": 0}, 2.0),
    ],
)
def test_grace_period_follows_the_kubelet(
    metadata: dict[str, int], spec: dict[str, int], grace: float
) -> None:
    assert grace_period_seconds({"metadata": metadata, "spec": spec}) == grace


def _status(caught: int) -> str:
    return f"Name:\tsleep\nSigIgn:\t0000000000000000\nSigCgt:\t{caught:016x}\n"


def test_sigterm_reaches_only_a_process_that_handles_it() -> None:
    term = 1 << (signal.SIGTERM - 1)
    assert catches_sigterm(_status(term))
    assert catches_sigterm(_status(term | 1 << (signal.SIGINT - 1)))
    assert not catches_sigterm(_status(1 << (signal.SIGINT - 1)))
    assert not catches_sigterm(_status(0))
    assert not catches_sigterm("Name:\tzombie\n")


def test_own_process_status_is_read_right() -> None:
    # Set the disposition both ways explicitly: the test session itself may
    # already handle SIGTERM (the integration suite's conftest does).
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        assert catches_sigterm(Path("/proc/self/status").read_text())
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        assert not catches_sigterm(Path("/proc/self/status").read_text())
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 2, True),
        ("Never", 1, False),
    ],
)
def test_restart_policy(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


# -- back-off --------------------------------------------------------------------------


def test_crash_back_off_doubles_from_10s_to_300s() -> None:
    backoff = Backoff()
    delays = []
    now = 0.0
    for _ in range(8):
        backoff.next("main", now, now)
        delays.append(backoff.delay("main"))
        now += backoff.delay("main") + 1
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_first_failure_restarts_at_once_then_waits() -> None:
    backoff = Backoff()
    assert not backoff.in_backoff_since("main", 0.0, 0.0)
    backoff.next("main", 0.0, 0.0)
    assert backoff.in_backoff_since("main", 1.0, 5.0)  # finished at 1, 4 s of 10 passed
    assert not backoff.in_backoff_since("main", 1.0, 11.0)


def test_back_off_resets_after_ten_minutes_of_running() -> None:
    backoff = Backoff()
    for t in (0.0, 20.0, 60.0):
        backoff.next("main", t, t)
    assert backoff.delay("main") == 40
    # Restarted at 60, ran for 10 minutes and a bit: a fresh start at 10 s, no wait.
    finished = 60.0 + 601
    assert not backoff.in_backoff_since("main", finished, finished + 1)
    backoff.next("main", finished, finished + 1)
    assert backoff.delay("main") == 10


def test_image_pull_back_off_counts_from_the_last_failed_pull() -> None:
    backoff = Backoff()
    backoff.next("img", 0.0, 0.0)
    assert backoff.in_backoff_since_update("img", 9.9)
    assert not backoff.in_backoff_since_update("img", 10.0)
    backoff.next("img", 10.0, 10.0)
    assert backoff.in_backoff_since_update("img", 29.0)


def test_durations_read_like_go() -> None:
    assert [format_duration(s) for s in (10, 20, 80, 300)] == ["10s", "20s", "1m20s", "5m0s"]


# -- pod addresses ---------------------------------------------------------------------


def test_each_pod_gets_its_own_loopback_address() -> None:
    addresses = PodAddresses("127.1.0.0/16")
    first = addresses.allocate("a")
    second = addresses.allocate("b")
    assert first != second
    assert first.startswith("127.1.") and second.startswith("127.1.")
    assert addresses.allocate("a") == first


def test_a_released_address_is_not_handed_out_next() -> None:
    addresses = PodAddresses("127.1.0.0/29")  # six usable addresses
    a = addresses.allocate("a")
    b = addresses.allocate("b")
    addresses.release("a")
    c = addresses.allocate("c")
    assert c not in (a, b)


def test_a_full_range_says_so() -> None:
    addresses = PodAddresses("127.1.0.0/30")  # two usable addresses
    a = addresses.allocate("a")
    addresses.allocate("b")
    with pytest.raises(PodRangeError, match="no free address"):
        addresses.allocate("c")
    addresses.release("a")
    assert addresses.allocate("c") == a


def test_reserved_addresses_are_kept() -> None:
    addresses = PodAddresses("127.1.0.0/29")
    addresses.reserve("old", "127.1.0.1")
    assert addresses.allocate("new") != "127.1.0.1"


@given(st.lists(st.text(min_size=1, max_size=8), unique=True, max_size=60))
def test_addresses_are_never_shared(uids: list[str]) -> None:
    addresses = PodAddresses("127.1.0.0/24")
    held = [addresses.allocate(uid) for uid in uids]
    assert len(set(held)) == len(held)


@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "127.1.0.0/33", "loopback"])
def test_the_pod_range_must_be_loopback(cidr: str) -> None:
    with pytest.raises(PodRangeError, match=cidr.split("/", maxsplit=1)[0]):
        PodAddresses(cidr)


# -- container logs --------------------------------------------------------------------


def test_log_records_round_trip() -> None:
    full = format_record("stdout", b"hello world\n", ns=1_700_000_000_123_000_000)
    assert full == b"2023-11-14T22:13:20.123Z stdout F hello world\n"
    record = parse_record(full.rstrip(b"\n"))
    assert record is not None and record.text() == b"hello world\n"
    partial = parse_record(format_record("stderr", b"no newline").rstrip(b"\n"))
    assert partial is not None and partial.partial and partial.text() == b"no newline"
    assert parse_record(b"garbage") is None


def test_timestamps_parse_back() -> None:
    assert parse_timestamp(timestamp(1_700_000_000_500_000_000)) == pytest.approx(1_700_000_000.5)
    assert parse_timestamp("2023-11-14T22:13:20Z") == 1_700_000_000
    assert parse_timestamp("2023-11-14T23:13:20+01:00") == 1_700_000_000


def test_log_options_from_the_api_servers_query() -> None:
    options = LogOptions.from_query(
        {"follow": ["true"], "tailLines": ["3"], "limitBytes": ["10"], "timestamps": ["true"]}
    )
    assert options == LogOptions(follow=True, timestamps=True, tail_lines=3, limit_bytes=10)
    assert LogOptions.from_query({"tail": ["all"]}).tail_lines is None


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"tailLines": ["-1"]}, "tailLines"),
        ({"limitBytes": ["0"]}, "limitBytes"),
        ({"sinceSeconds": ["x"]}, "sinceSeconds"),
        ({"sinceTime": ["yesterday"]}, "sinceTime"),
        ({"sinceSeconds": ["5"], "sinceTime": ["2023-11-14T22:13:20Z"]}, "sinceSeconds"),
        ({"follow": ["maybe"]}, "follow"),
    ],
)
def test_bad_log_options_are_refused_by_name(query: dict[str, list[str]], named: str) -> None:
    with pytest.raises(LogRequestError, match=named) as raised:
        LogOptions.from_query(query)
    assert raised.value.status == 422


def _terminated(cid: str) -> dict[str, object]:
    return {"terminated": {"exitCode": 1, "containerID": cid}}


def test_which_instance_is_read_like_the_kubelet() -> None:
    running = {"state": {"running": {}}, "containerID": "c://2", "lastState": _terminated("c://1")}
    assert instance_for(running, "main", "p", previous=False) == "c://2"
    assert instance_for(running, "main", "p", previous=True) == "c://1"
    looping = {
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": _terminated("c://1"),
    }
    assert instance_for(looping, "main", "p", previous=False) == "c://1"
    done = {"state": _terminated("c://3"), "lastState": {}}
    assert instance_for(done, "main", "p", previous=False) == "c://3"
    with pytest.raises(
        LogRequestError, match='previous terminated container "main" in pod "p" not found'
    ):
        instance_for(done, "main", "p", previous=True)
    pulling = {"state": {"waiting": {"reason": "ImagePullBackOff"}}, "lastState": {}}
    with pytest.raises(LogRequestError, match="trying and failing to pull image"):
        instance_for(pulling, "main", "p", previous=False)


def _instance(tmp_path: Path, lines: list[tuple[int, bytes]]) -> InstanceLog:
    instance = InstanceLog(tmp_path / "main" / "0.log")
    instance.path.write_bytes(b"".join(format_record("stdout", text, ns) for ns, text in lines))
    instance.done.set()
    return instance


def _read(instance: InstanceLog, options: LogOptions) -> bytes:
    out: list[bytes] = []
    stream_log(instance, options, out.append)
    return b"".join(out)


def test_tail_limit_and_timestamps(tmp_path: Path) -> None:
    base = 1_700_000_000_000_000_000
    instance = _instance(tmp_path, [(base + i, f"line {i}\n".encode()) for i in range(5)])
    assert _read(instance, LogOptions()) == b"".join(f"line {i}\n".encode() for i in range(5))
    assert _read(instance, LogOptions(tail_lines=2)) == b"line 3\nline 4\n"
    assert _read(instance, LogOptions(tail_lines=0)) == b""
    assert _read(instance, LogOptions(limit_bytes=9)) == b"line 0\nli"
    stamped = _read(instance, LogOptions(tail_lines=1, timestamps=True))
    assert stamped == b"2023-11-14T22:13:20.000000004Z line 4\n"


def test_since_keeps_only_newer_lines(tmp_path: Path) -> None:
    old = 1_700_000_000 * 10**9
    instance = _instance(tmp_path, [(old, b"old\n"), (old + 100 * 10**9, b"new\n")])
    since = LogOptions(since_time=1_700_000_050.0)
    assert _read(instance, since) == b"new\n"


def test_only_the_running_and_last_instances_are_kept(tmp_path: Path) -> None:
    for name in ("0.log", "1.log", "1.log.1", "2.log"):
        (tmp_path / name).write_text("x")
    keep_last_instances(tmp_path, {2, 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.log", "1.log.1", "2.log"]


def test_a_full_log_file_rotates_once(tmp_path: Path) -> None:
    instance = InstanceLog(tmp_path / "0.log", max_bytes=200)
    for i in range(20):
        instance._write(format_record("stdout", f"line {i}\n".encode()))
    assert instance.rotated.exists()
    assert instance.path.stat().st_size <= 200 and instance.rotated.stat().st_size <= 200
    assert instance.text().endswith("line 19\n")
