"""The dashboard's guards: the Host it answers to and the CSRF token a POST must carry."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from cronfleet.plugin.dashboard import security

STATIC = Path(security.__file__).parent / "static"


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "LOCALHOST:8765"])
def test_its_own_address_is_answered(host: str) -> None:
    assert security.host_allowed(host, 8765)


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "127.0.0.1",  # no port: not what a browser sends for this address
        "localhost",
        "127.0.0.1:8766",
        "attacker.example:8765",  # DNS rebinding: a foreign name resolving to 127.0.0.1
        "127.0.0.1.nip.io:8765",
        "localhost.:8765",
        "[::1]:8765",
        "0.0.0.0:8765",
        "127.0.0.1:8765 ",
        "127.0.0.1:8765@attacker.example",
    ],
)
def test_any_other_host_is_refused(host: str | None) -> None:
    assert not security.host_allowed(host, 8765)


def test_a_post_needs_the_token_in_both_the_cookie_and_the_form() -> None:
    token = security.new_csrf_token()
    assert security.csrf_valid(token, token, token)
    assert not security.csrf_valid(token, None, token)
    assert not security.csrf_valid(token, token, None)
    assert not security.csrf_valid(token, "", "")
    assert not security.csrf_valid(token, token, token[:-1])
    assert not security.csrf_valid(token, token + "x", token)
    other = security.new_csrf_token()
    assert not security.csrf_valid(token, other, other)
    # An empty expected token (never the case) accepts nothing either.
    assert not security.csrf_valid("", "", "")


def test_tokens_are_unguessable_and_cookies_are_per_port() -> None:
    tokens = {security.new_csrf_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(token) >= 40 for token in tokens)
    assert security.csrf_cookie_name(8765) != security.csrf_cookie_name(8766)


def test_the_policy_allows_only_the_dashboards_own_files() -> None:
    policy = security.SECURITY_HEADERS["Content-Security-Policy"]
    assert policy.startswith("default-src 'self'")
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert security.SECURITY_HEADERS["X-Frame-Options"] == "DENY"


def test_the_vendored_htmx_is_the_recorded_file() -> None:
    record = (STATIC / "VENDORED.md").read_text()
    row = re.search(
        r"\| `htmx\.min\.js` \| `htmx\.org`.*?\| ([\d.]+) \| (\S+) \| `([0-9a-f]{64})`", record
    )
    assert row is not None, record
    version, licence, digest = row.groups()
    body = (STATIC / "htmx.min.js").read_bytes()
    assert hashlib.sha256(body).hexdigest() == digest
    assert f'version:"{version}"' in body.decode()
    assert licence == "0BSD"
    # No asset of the dashboard comes from another origin.
    templates = Path(security.__file__).parent / "templates"
    for page in templates.glob("*.html"):
        text = page.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, page
        assert "<script>" not in text and "style=" not in text and "onclick" not in text, page
