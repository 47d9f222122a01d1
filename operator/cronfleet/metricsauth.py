"""Who may read ``/metrics``: the Kubernetes API decides, as for its own endpoints.

A scrape carries a bearer token. The operator asks the API server who the
token belongs to (a ``TokenReview``), then whether that user may ``get`` the
non-resource URL ``/metrics`` (a ``SubjectAccessReview``), as controller-runtime's
``filters.WithAuthenticationAndAuthorization`` does for kubebuilder's operators.
So access is granted with RBAC: bind the ``<release>-metrics-reader``
ClusterRole to Prometheus' ServiceAccount.

This module holds the decisions only (the header, the request bodies, what an
answer means, the cache); :mod:`cronfleet.metricsserver` sends the reviews and
serves the answer.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

METRICS_PATH = "/metrics"
METRICS_VERB = "get"
AUTH_SETTING = "CRONFLEET_METRICS_AUTH"

# How long a review's outcome is reused for the same token. A scrape every 15 to
# 30 s then costs one TokenReview and one SubjectAccessReview a minute per
# scraping token; a revoked binding or a deleted ServiceAccount stops working
# within a minute. Refusals are kept for less, so that a binding just created
# works at the next scrape or the one after, while a client retrying a bad
# token costs at most one review pair every 10 s.
ALLOWED_TTL_SECONDS = 60.0
REFUSED_TTL_SECONDS = 10.0
# Distinct tokens remembered at once. A few scrapers need a handful; the bound
# keeps a stream of made-up tokens from growing memory (they still cost a
# TokenReview each, as they would against the API server itself).
CACHE_ENTRIES = 256
# Tokens longer than this are refused without asking the API server: service
# account tokens are about 1 KiB, OIDC ones a few KiB.
MAX_TOKEN_BYTES = 16 * 1024


class MetricsAuth(StrEnum):
    """The setting ``CRONFLEET_METRICS_AUTH``."""

    NONE = "none"
    KUBERNETES = "kubernetes"


def metrics_auth(text: str) -> MetricsAuth:
    """The setting from its text; empty means ``none`` (the operator's own default)."""
    value = text.strip().lower() or MetricsAuth.NONE.value
    try:
        return MetricsAuth(value)
    except ValueError:
        allowed = ", ".join(repr(mode.value) for mode in MetricsAuth)
        raise ValueError(f"{AUTH_SETTING} should be one of {allowed}; got {text!r}") from None


class Outcome(IntEnum):
    """The HTTP status a scrape gets."""

    ALLOWED = 200
    UNAUTHENTICATED = 401
    FORBIDDEN = 403
    # The API server could not be asked, or answered nonsense: nothing is cached.
    REVIEW_FAILED = 500


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    # For the operator's log, never for the client: names who was refused and why.
    reason: str

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED

    @property
    def cacheable(self) -> bool:
        return self.outcome is not Outcome.REVIEW_FAILED


@dataclass(frozen=True)
class User:
    """Who a TokenReview said the token belongs to."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None.

    The scheme is case-insensitive (RFC 7235); an empty, oversized or
    multi-word token is no token.
    """
    if not authorization:
        return None
    words = authorization.split()
    if len(words) != 2 or words[0].lower() != "bearer":
        return None
    token = words[1]
    if len(_utf8(token)) > MAX_TOKEN_BYTES:
        return None
    return token


def _utf8(text: str) -> bytes:
    # A header may carry any byte; undecodable ones arrive as lone surrogates.
    return text.encode("utf-8", "surrogatepass")


def token_review(token: str) -> dict[str, Any]:
    """The TokenReview to create for a token (the API server's own audiences)."""
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }


def subject_access_review(user: User) -> dict[str, Any]:
    """The SubjectAccessReview: may this user ``get`` the non-resource URL /metrics?"""
    spec: dict[str, Any] = {
        "user": user.username,
        "groups": list(user.groups),
        "nonResourceAttributes": {"path": METRICS_PATH, "verb": METRICS_VERB},
    }
    if user.uid:
        spec["uid"] = user.uid
    if user.extra:
        spec["extra"] = {key: list(values) for key, values in user.extra}
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": spec,
    }


def reviewed_user(answer: Mapping[str, Any]) -> User | Decision:
    """The user a TokenReview's answer names, or the refusal (401) it amounts to."""
    status = answer.get("status")
    if not isinstance(status, Mapping):
        return Decision(Outcome.REVIEW_FAILED, "the TokenReview answer has no status")
    if status.get("authenticated") is not True:
        error = str(status.get("error") or "the token is not valid")
        return Decision(Outcome.UNAUTHENTICATED, f"token refused by the API server: {error}")
    user = status.get("user")
    username = user.get("username") if isinstance(user, Mapping) else None
    if not isinstance(user, Mapping) or not isinstance(username, str) or not username:
        return Decision(Outcome.UNAUTHENTICATED, "the API server authenticated no user name")
    groups = user.get("groups") or []
    extra = user.get("extra") or {}
    return User(
        username=username,
        uid=str(user.get("uid") or ""),
        groups=tuple(str(group) for group in groups) if isinstance(groups, list) else (),
        extra=tuple(
            sorted(
                (str(key), tuple(str(value) for value in values))
                for key, values in extra.items()
                if isinstance(values, list)
            )
        )
        if isinstance(extra, Mapping)
        else (),
    )


def access_decision(user: User, answer: Mapping[str, Any]) -> Decision:
    """What a SubjectAccessReview's answer means for the scrape (200 or 403)."""
    status = answer.get("status")
    if not isinstance(status, Mapping):
        return Decision(Outcome.REVIEW_FAILED, "the SubjectAccessReview answer has no status")
    who = f"user {user.username!r}"
    if status.get("allowed") is True and status.get("denied") is not True:
        return Decision(Outcome.ALLOWED, f"{who} may {METRICS_VERB} {METRICS_PATH}")
    because = str(status.get("reason") or status.get("evaluationError") or "no RBAC rule allows it")
    return Decision(Outcome.FORBIDDEN, f"{who} may not {METRICS_VERB} {METRICS_PATH}: {because}")


def token_key(token: str) -> str:
    """The cache's key for a token: its digest, so that no token stays in memory."""
    return hashlib.sha256(_utf8(token)).hexdigest()


class DecisionCache:
    """Review outcomes by token, each kept for its TTL, at most ``size`` of them.

    Failed reviews are not kept: the next scrape asks again. When full, expired
    entries go first, then the oldest.
    """

    def __init__(
        self,
        size: int = CACHE_ENTRIES,
        allowed_ttl: float = ALLOWED_TTL_SECONDS,
        refused_ttl: float = REFUSED_TTL_SECONDS,
    ) -> None:
        if size < 1:
            raise ValueError(f"the cache size should be at least 1; got {size}")
        self.size = size
        self.allowed_ttl = allowed_ttl
        self.refused_ttl = refused_ttl
        self._entries: OrderedDict[str, tuple[float, Decision]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, now: float) -> Decision | None:
        key = token_key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, decision = entry
        if now >= expires:
            del self._entries[key]
            return None
        return decision

    def put(self, token: str, decision: Decision, now: float) -> None:
        if not decision.cacheable:
            return
        ttl = self.allowed_ttl if decision.allowed else self.refused_ttl
        key = token_key(token)
        self._entries.pop(key, None)
        if len(self._entries) >= self.size:
            for stale in [k for k, (expires, _) in self._entries.items() if now >= expires]:
                del self._entries[stale]
        while len(self._entries) >= self.size:
            self._entries.popitem(last=False)
        self._entries[key] = (now + ttl, decision)
