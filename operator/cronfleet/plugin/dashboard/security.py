"""The dashboard's guards, decided purely: whose Host it answers, which POSTs it accepts.

The dashboard acts with the user's own credentials, so a page from any other
origin must not be able to drive it: a DNS-rebinding page reaches 127.0.0.1
under a foreign Host name (refused by the Host check), and a cross-site form
cannot read the per-start token it would need (refused by the CSRF check).
"""

from __future__ import annotations

import hmac
import secrets

LOOPBACK = "127.0.0.1"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

# Only the dashboard's own files: no inline script or style, no other origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def own_hosts(port: int) -> frozenset[str]:
    """The Host values a browser sends for this dashboard, and no others."""
    return frozenset({f"{LOOPBACK}:{port}", f"localhost:{port}"})


def host_allowed(host: str | None, port: int) -> bool:
    # Exact match: no default port, no trailing dot, no other name that resolves to loopback.
    return host is not None and host.lower() in own_hosts(port)


def csrf_cookie_name(port: int) -> str:
    # Cookies ignore ports: two dashboards on one machine must not overwrite each other's.
    return f"cronfleet_dashboard_csrf_{port}"


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_valid(expected: str, cookie: str | None, submitted: str | None) -> bool:
    """The SameSite=Strict cookie and the form's (or header's) copy both carry the token."""
    if not expected or not cookie or not submitted:
        return False
    cookie_ok = hmac.compare_digest(cookie.encode(), expected.encode())
    submitted_ok = hmac.compare_digest(submitted.encode(), expected.encode())
    return cookie_ok and submitted_ok


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LOOPBACK",
    "SECURITY_HEADERS",
    "csrf_cookie_name",
    "csrf_valid",
    "host_allowed",
    "new_csrf_token",
    "own_hosts",
]
