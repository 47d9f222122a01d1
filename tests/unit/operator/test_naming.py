"""CronJob names fit the 52-character limit, deterministically and without collisions."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from cronfleet.naming import CRONJOB_NAME_LIMIT, cronjob_name, labels

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?", fullmatch=True)


def test_short_names_are_kept() -> None:
    assert cronjob_name("shopify-sync") == "shopify-sync"
    assert cronjob_name("a" * 52) == "a" * 52


def test_long_names_are_truncated_with_a_hash() -> None:
    long = "tenant-acme-" + "x" * 60
    result = cronjob_name(long)
    assert len(result) == CRONJOB_NAME_LIMIT
    assert result.startswith("tenant-acme-xxx") and re.search(r"-[0-9a-f]{8}$", result)
    assert cronjob_name(long) == result


@given(names)
def test_every_name_maps_to_a_valid_cronjob_name(name: str) -> None:
    result = cronjob_name(name)
    assert len(result) <= CRONJOB_NAME_LIMIT
    assert DNS_LABEL.match(result) or "." in result
    assert cronjob_name(name) == result


@given(names, names)
def test_distinct_long_names_do_not_collide(first: str, second: str) -> None:
    if first != second:
        assert cronjob_name(first) != cronjob_name(second)


@given(names)
def test_label_values_fit(name: str) -> None:
    assert len(labels(name)["cronfleet.io/schedule"]) <= 63
