"""Who may read /metrics: the header, the reviews sent, what their answers mean, the cache."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from hypothesis import assume, given
from hypothesis import strategies as st

from cronfleet.config import OperatorConfig
from cronfleet.metricsauth import (
    ALLOWED_TTL_SECONDS,
    MAX_TOKEN_BYTES,
    REFUSED_TTL_SECONDS,
    Decision,
    DecisionCache,
    MetricsAuth,
    Outcome,
    User,
    access_decision,
    bearer_token,
    metrics_auth,
    reviewed_user,
    subject_access_review,
    token_review,
)
from cronfleet.metricsserver import ScrapeAuthorizer, self_signed_certificate, server_ssl_context

ROBOT = User(
    username="system:serviceaccount:monitoring:prometheus",
    uid="0b7c",
    groups=("system:serviceaccounts", "system:serviceaccounts:monitoring"),
    extra=(("authentication.kubernetes.io/pod-name", ("prometheus-0",)),),
)


# -- the setting ----------------------------------------------------------------------


def test_the_operator_defaults_to_no_authentication() -> None:
    assert OperatorConfig.from_env({}).metrics_auth is MetricsAuth.NONE
    config = OperatorConfig.from_env({"CRONFLEET_METRICS_AUTH": "Kubernetes"})
    assert config.metrics_auth is MetricsAuth.KUBERNETES


def test_an_unknown_setting_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError) as refused:
        metrics_auth("tokens")
    message = str(refused.value)
    assert "CRONFLEET_METRICS_AUTH" in message and "'tokens'" in message
    assert "'kubernetes'" in message and "'none'" in message


def test_a_certificate_needs_its_key() -> None:
    with pytest.raises(ValueError, match="CRONFLEET_METRICS_KEY_FILE is not"):
        OperatorConfig.from_env({"CRONFLEET_METRICS_CERT_FILE": "/tls/tls.crt"})
    config = OperatorConfig.from_env(
        {
            "CRONFLEET_METRICS_CERT_FILE": "/tls/tls.crt",
            "CRONFLEET_METRICS_KEY_FILE": "/tls/tls.key",
        }
    )
    assert (config.metrics_cert_file, config.metrics_key_file) == ("/tls/tls.crt", "/tls/tls.key")


# -- the header -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer abc.def", "abc.def"),
        ("BEARER   abc.def  ", "abc.def"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer two words", None),
        ("Token abc", None),
        ("Bearer " + "x" * (MAX_TOKEN_BYTES + 1), None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@given(st.text(min_size=1, max_size=64))
def test_any_single_word_token_is_read_back(token: str) -> None:
    assume(token.split() == [token])
    assert bearer_token(f"Bearer {token}") == token
    assert bearer_token(f"Bearer {token} {token}") is None


# -- the reviews sent -------------------------------------------------------------------


def test_the_token_review_carries_the_token() -> None:
    assert token_review("abc") == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": "abc"},
    }


def test_the_access_review_asks_for_get_on_the_metrics_url_as_the_user() -> None:
    assert subject_access_review(ROBOT) == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "system:serviceaccount:monitoring:prometheus",
            "uid": "0b7c",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:monitoring"],
            "extra": {"authentication.kubernetes.io/pod-name": ["prometheus-0"]},
            "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
        },
    }
    bare = subject_access_review(User("alice"))["spec"]
    assert "uid" not in bare and "extra" not in bare and bare["groups"] == []


# -- what the answers mean ----------------------------------------------------------------


def test_an_authenticated_token_names_its_user() -> None:
    answer = {
        "status": {
            "authenticated": True,
            "user": {
                "username": ROBOT.username,
                "uid": "0b7c",
                "groups": list(ROBOT.groups),
                "extra": {"authentication.kubernetes.io/pod-name": ["prometheus-0"]},
            },
        }
    }
    assert reviewed_user(answer) == ROBOT


@pytest.mark.parametrize(
    ("answer", "outcome", "words"),
    [
        (
            {"status": {"authenticated": False, "error": "token has expired"}},
            Outcome.UNAUTHENTICATED,
            "token has expired",
        ),
        ({"status": {}}, Outcome.UNAUTHENTICATED, "not valid"),
        ({"status": {"authenticated": True, "user": {}}}, Outcome.UNAUTHENTICATED, "no user"),
        ({"kind": "Status"}, Outcome.REVIEW_FAILED, "no status"),
    ],
)
def test_a_token_review_that_names_no_user_refuses(
    answer: Mapping[str, Any], outcome: Outcome, words: str
) -> None:
    decision = reviewed_user(answer)
    assert isinstance(decision, Decision)
    assert decision.outcome is outcome and words in decision.reason


@pytest.mark.parametrize(
    ("status", "outcome", "words"),
    [
        ({"allowed": True, "reason": "RBAC: allowed by ClusterRoleBinding"}, Outcome.ALLOWED, ""),
        ({"allowed": False}, Outcome.FORBIDDEN, "no RBAC rule allows it"),
        ({"allowed": False, "reason": "denied by webhook"}, Outcome.FORBIDDEN, "webhook"),
        ({"allowed": True, "denied": True}, Outcome.FORBIDDEN, ""),
    ],
)
def test_the_access_review_decides(status: dict[str, Any], outcome: Outcome, words: str) -> None:
    decision = access_decision(ROBOT, {"status": status})
    assert decision.outcome is outcome and words in decision.reason
    assert ROBOT.username in decision.reason


# -- the cache -----------------------------------------------------------------------------

ALLOW = Decision(Outcome.ALLOWED, "ok")
DENY = Decision(Outcome.FORBIDDEN, "no")


def test_allowed_answers_are_kept_longer_than_refusals() -> None:
    cache = DecisionCache()
    cache.put("good", ALLOW, now=100.0)
    cache.put("bad", DENY, now=100.0)
    assert cache.get("good", 100.0 + ALLOWED_TTL_SECONDS - 0.1) == ALLOW
    assert cache.get("bad", 100.0 + REFUSED_TTL_SECONDS - 0.1) == DENY
    assert cache.get("bad", 100.0 + REFUSED_TTL_SECONDS) is None
    assert cache.get("good", 100.0 + ALLOWED_TTL_SECONDS) is None
    assert len(cache) == 0


def test_failed_reviews_are_not_kept() -> None:
    cache = DecisionCache()
    cache.put("t", Decision(Outcome.REVIEW_FAILED, "API server down"), now=0.0)
    assert cache.get("t", 0.0) is None


def test_the_cache_keeps_no_token() -> None:
    cache = DecisionCache()
    cache.put("s3cret-token", ALLOW, now=0.0)
    assert "s3cret-token" not in repr(vars(cache))


@given(st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=200))
def test_the_cache_never_grows_past_its_size(puts: list[tuple[int, bool]]) -> None:
    cache = DecisionCache(size=8)
    for step, (token, allowed) in enumerate(puts):
        cache.put(str(token), ALLOW if allowed else DENY, now=float(step))
        assert len(cache) <= 8
        assert cache.get(str(token), float(step)) is not None


def test_a_full_cache_drops_expired_entries_before_the_oldest_live_one() -> None:
    cache = DecisionCache(size=2, allowed_ttl=60, refused_ttl=10)
    cache.put("old-allowed", ALLOW, now=0.0)
    cache.put("refused", DENY, now=1.0)
    cache.put("new", ALLOW, now=20.0)  # "refused" expired at 11: it goes, not "old-allowed"
    assert cache.get("old-allowed", 20.0) == ALLOW and cache.get("new", 20.0) == ALLOW
    cache.put("newest", ALLOW, now=21.0)  # nothing expired: the oldest goes
    assert cache.get("old-allowed", 21.0) is None
    assert cache.get("newest", 21.0) == ALLOW


# -- the authorizer's order of reviews (a recording reviewer: no API) ----------------------


class Reviews:
    def __init__(self, authenticated: bool, allowed: bool) -> None:
        self.authenticated, self.allowed = authenticated, allowed
        self.sent: list[str] = []

    async def create_token_review(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.sent.append("TokenReview")
        user = {"username": "alice", "groups": ["devs"]}
        return {"status": {"authenticated": self.authenticated, "user": user}}

    async def create_subject_access_review(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.sent.append(f"SubjectAccessReview {body['spec']['user']}")
        return {"status": {"allowed": self.allowed}}


@pytest.mark.parametrize(
    ("header", "authenticated", "allowed", "outcome", "sent"),
    [
        (None, True, True, Outcome.UNAUTHENTICATED, []),
        ("Bearer t", False, True, Outcome.UNAUTHENTICATED, ["TokenReview"]),
        ("Bearer t", True, False, Outcome.FORBIDDEN, ["TokenReview", "SubjectAccessReview alice"]),
        ("Bearer t", True, True, Outcome.ALLOWED, ["TokenReview", "SubjectAccessReview alice"]),
    ],
)
def test_scrapes_are_reviewed_once_per_ttl(
    header: str | None, authenticated: bool, allowed: bool, outcome: Outcome, sent: list[str]
) -> None:
    reviews = Reviews(authenticated, allowed)
    clock = [0.0]
    authorizer = ScrapeAuthorizer(reviews, DecisionCache(), clock=lambda: clock[0])

    async def scrapes() -> list[Decision]:
        first = await authorizer.decide(header)
        clock[0] = 5.0  # within both TTLs: the answer is reused
        return [first, await authorizer.decide(header)]

    decisions = asyncio.run(scrapes())
    assert [d.outcome for d in decisions] == [outcome, outcome]
    assert reviews.sent == sent


# -- TLS ---------------------------------------------------------------------------------


def test_the_self_signed_certificate_names_the_host_and_loopback() -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    cert_pem, key_pem = self_signed_certificate(now, ("localhost", "cronfleet-7d9f"))
    certificate = x509.load_pem_x509_certificate(cert_pem)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "cronfleet-7d9f"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert certificate.not_valid_before_utc < now < certificate.not_valid_after_utc
    assert b"PRIVATE KEY" in key_pem
    assert isinstance(server_ssl_context(), ssl.SSLContext)
