"""Serving ``/metrics`` over HTTPS to the scrapers the Kubernetes API allows.

The decisions are :mod:`cronfleet.metricsauth`'s; this module sends the
reviews through the operator's API client, answers the scrape, and sets up
TLS: the certificate and key mounted at the configured paths, or else a
self-signed one made at start (as controller-runtime's metrics server does),
which scrapers accept with ``insecureSkipVerify``: the bearer token, not the
certificate, is what keeps the series private.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import ClientError, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from cronfleet.kubeapi import ApiError
from cronfleet.metricsauth import (
    METRICS_PATH,
    Decision,
    DecisionCache,
    Outcome,
    access_decision,
    bearer_token,
    reviewed_user,
    subject_access_review,
    token_review,
)

logger = logging.getLogger(__name__)

# A year: the certificate lives as long as the process, which restarts far sooner.
SELF_SIGNED_DAYS = 365


class Reviewer(Protocol):
    async def create_token_review(self, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def create_subject_access_review(self, body: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass
class ScrapeAuthorizer:
    """Asks the API server about a scrape's token, reusing recent answers."""

    reviewer: Reviewer
    cache: DecisionCache
    clock: Callable[[], float] = time.monotonic

    async def decide(self, authorization: str | None) -> Decision:
        token = bearer_token(authorization)
        if token is None:
            return Decision(Outcome.UNAUTHENTICATED, "no bearer token in the Authorization header")
        now = self.clock()
        cached = self.cache.get(token, now)
        if cached is not None:
            return cached
        try:
            decision = await self._review(token)
        except (TimeoutError, ApiError, ClientError, OSError) as error:
            decision = Decision(Outcome.REVIEW_FAILED, f"the API server could not review: {error}")
        self.cache.put(token, decision, now)
        return decision

    async def _review(self, token: str) -> Decision:
        user = reviewed_user(await self.reviewer.create_token_review(token_review(token)))
        if isinstance(user, Decision):
            return user
        answer = await self.reviewer.create_subject_access_review(subject_access_review(user))
        return access_decision(user, answer)


def self_signed_certificate(
    now: datetime.datetime, hostnames: tuple[str, ...]
) -> tuple[bytes, bytes]:
    """A PEM certificate and key for ``hostnames``, 127.0.0.1 and ::1, valid from ``now``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    alternative = [x509.DNSName(host) for host in hostnames] + [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def server_ssl_context(cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """TLS with the mounted certificate, or a self-signed one made now."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
        return context
    hostnames = tuple(dict.fromkeys(["localhost", socket.gethostname()]))
    cert, key = self_signed_certificate(datetime.datetime.now(datetime.UTC), hostnames)
    # ssl loads certificates from files only; the key file is the process's alone.
    with tempfile.TemporaryDirectory(prefix="cronfleet-metrics-") as directory:
        cert_path, key_path = Path(directory, "tls.crt"), Path(directory, "tls.key")
        cert_path.write_bytes(cert)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        context.load_cert_chain(str(cert_path), str(key_path))
    return context


class MetricsServer:
    """``GET /metrics`` on ``port``; with an authorizer, over TLS and for allowed tokens only."""

    def __init__(
        self,
        registry: CollectorRegistry,
        port: int,
        authorizer: ScrapeAuthorizer | None = None,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "0.0.0.0",
    ) -> None:
        self.registry = registry
        self.port = port
        self.authorizer = authorizer
        self.ssl_context = ssl_context
        self.host = host
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(METRICS_PATH, self._scrape)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        scheme = "https" if self.ssl_context else "http"
        guard = "TokenReview + SubjectAccessReview" if self.authorizer else "no authentication"
        logger.info("Serving %s://%s:%d%s (%s)", scheme, self.host, self.port, METRICS_PATH, guard)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _scrape(self, request: web.Request) -> web.Response:
        if self.authorizer is not None:
            decision = await self.authorizer.decide(request.headers.get("Authorization"))
            if not decision.allowed:
                logger.warning(
                    "Refused a scrape of %s from %s (%d): %s",
                    METRICS_PATH,
                    request.remote,
                    decision.outcome.value,
                    decision.reason,
                )
                return _refusal(decision.outcome)
        # The collectors read every cached Schedule: off the event loop, as
        # prometheus_client's own server does in its thread.
        body = await asyncio.to_thread(generate_latest, self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _refusal(outcome: Outcome) -> web.Response:
    # The reason stays in the operator's log: the client learns only the status.
    if outcome is Outcome.UNAUTHENTICATED:
        return web.Response(
            status=outcome.value,
            text="Unauthorized\n",
            headers={"WWW-Authenticate": 'Bearer realm="cronfleet"'},
        )
    text = "Forbidden\n" if outcome is Outcome.FORBIDDEN else "Internal Server Error\n"
    return web.Response(status=outcome.value, text=text)


async def serve_authenticated_metrics(
    registry: CollectorRegistry,
    port: int,
    reviewer: Reviewer,
    cert_file: str = "",
    key_file: str = "",
) -> MetricsServer:
    """Start /metrics as ``CRONFLEET_METRICS_AUTH=kubernetes`` asks: HTTPS, allowed tokens only."""
    server = MetricsServer(
        registry,
        port,
        authorizer=ScrapeAuthorizer(reviewer, DecisionCache()),
        ssl_context=server_ssl_context(cert_file, key_file),
    )
    await server.start()
    return server
