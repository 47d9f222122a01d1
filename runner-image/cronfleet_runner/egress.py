"""Which addresses the ``http`` task may connect to, and connections that enforce it.

A Schedule's author chooses the URL, and the run's summary (with an excerpt
of the body) lands in the Schedule's status: without a limit, the ``http``
task reads a cloud provider's metadata service (credentials of the node's
role) or any cluster-internal endpoint on the author's behalf. So every
connection the task makes, and each one a redirect leads to, first resolves
the host once, checks every resolved address against a deny-list, and then
connects to that same checked address: a name cannot resolve to an allowed
address for the check and to a denied one for the connection (DNS
rebinding).

The deny-list is the built-in one (link-local and cloud metadata addresses)
plus what the cluster's administrator adds through the operator
(``CRONFLEET_HTTP_DENY_CIDRS``, e.g. the pod and service CIDRs); ``none``
drops the built-in list. Loopback stays allowed unless added.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cronfleet_runner.contract import ENV_HTTP_DENY_CIDRS

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

NO_DENY_LIST = "none"
DEFAULT_DENY_LIST = "default"
CONFIGURED = f"configured in {ENV_HTTP_DENY_CIDRS}"


@dataclass(frozen=True)
class DenyRule:
    network: Network
    why: str

    def __str__(self) -> str:
        return f"{self.network} ({self.why})"


# The metadata addresses come first: they are inside 169.254.0.0/16 too, but
# naming the service says more than naming the range.
DEFAULT_RULES: tuple[DenyRule, ...] = (
    DenyRule(
        ipaddress.ip_network("169.254.169.254/32"),
        "cloud metadata service: AWS, Google Cloud, Azure, Oracle, DigitalOcean",
    ),
    DenyRule(ipaddress.ip_network("fd00:ec2::254/128"), "cloud metadata service: AWS over IPv6"),
    DenyRule(ipaddress.ip_network("100.100.100.200/32"), "cloud metadata service: Alibaba Cloud"),
    DenyRule(ipaddress.ip_network("169.254.0.0/16"), "IPv4 link-local"),
    DenyRule(ipaddress.ip_network("fe80::/10"), "IPv6 link-local"),
)

# Addresses that carry an IPv4 address inside an IPv6 one reach that IPv4
# address: IPv4-mapped (::ffff:a.b.c.d) and the NAT64 well-known prefix.
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


class DenyListError(ValueError):
    """CRONFLEET_HTTP_DENY_CIDRS that cannot be understood."""


def parse_deny_cidrs(text: str | None) -> tuple[DenyRule, ...]:
    """The rules ``CRONFLEET_HTTP_DENY_CIDRS`` asks for.

    Empty or ``default``: the built-in rules. Comma-separated CIDRs (or single
    addresses) are added to them; ``none`` among the items drops the
    built-in rules, so ``none`` alone allows every address.
    """
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    keywords = {item.lower() for item in items} & {NO_DENY_LIST, DEFAULT_DENY_LIST}
    if keywords == {NO_DENY_LIST, DEFAULT_DENY_LIST}:
        raise DenyListError(
            f"{ENV_HTTP_DENY_CIDRS} cannot contain both 'none' and 'default' "
            f"(got {text!r}); use 'none' with the CIDRs to deny instead of the built-in list"
        )
    rules: list[DenyRule] = [] if NO_DENY_LIST in keywords else list(DEFAULT_RULES)
    for item in items:
        if item.lower() in keywords:
            continue
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError as error:
            raise DenyListError(
                f"{ENV_HTTP_DENY_CIDRS} should be comma-separated CIDRs such as "
                f"10.96.0.0/12, 'default' or 'none'; {item!r} is none of these ({error})"
            ) from error
        rules.append(DenyRule(network, CONFIGURED))
    return tuple(rules)


def deny_rules_from(environ: Mapping[str, str]) -> tuple[DenyRule, ...]:
    return parse_deny_cidrs(environ.get(ENV_HTTP_DENY_CIDRS))


def _reached(address: Address) -> list[Address]:
    """The address and any IPv4 address a packet to it would reach."""
    reached: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            reached.append(address.ipv4_mapped)
        elif address in NAT64_PREFIX:
            reached.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return reached


def denied_by(address: str | Address, rules: Sequence[DenyRule]) -> DenyRule | None:
    """The rule that forbids connecting to ``address``, or None when it is allowed."""
    if isinstance(address, str):
        # An IPv6 link-local address may come with its zone: fe80::1%eth0.
        address = ipaddress.ip_address(address.split("%", 1)[0])
    for reached in _reached(address):
        for rule in rules:
            if reached.version == rule.network.version and reached in rule.network:
                return rule
    return None


def ip_literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class AddressDeniedError(Exception):
    """A connection the deny-list forbids; raised before any packet is sent.

    Not an OSError on purpose: urllib turns those into retryable-looking
    URLErrors, while this one must end the run as a permanent failure.
    """

    def __init__(self, host: str, address: str, rule: DenyRule) -> None:
        self.host = host
        self.address = address
        self.rule = rule
        how = "is" if ip_literal(host) is not None else "resolves to"
        super().__init__(
            f"the host {host} {how} {address}, which the http deny-list forbids: "
            f"rule {rule}; no connection was made. The cluster's administrator sets the "
            f"deny-list with the operator's {ENV_HTTP_DENY_CIDRS}"
        )


# What http.client passes when no timeout was given (urllib always gives one).
_DEFAULT_TIMEOUT: object = getattr(socket, "_GLOBAL_DEFAULT_TIMEOUT", None)

Resolver = Callable[[str, int], list[tuple[Any, ...]]]


def system_resolver(host: str, port: int) -> list[tuple[Any, ...]]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


@dataclass(frozen=True)
class Guard:
    """The deny-list, and the resolver it checks (replaceable in tests)."""

    rules: tuple[DenyRule, ...]
    resolver: Resolver = system_resolver

    def check_literal(self, host: str) -> None:
        address = ip_literal(host)
        if address is not None:
            rule = denied_by(address, self.rules)
            if rule is not None:
                raise AddressDeniedError(host, str(address), rule)

    def create_connection(
        self,
        address: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
        *args: Any,
    ) -> socket.socket:
        """socket.create_connection, resolving once and connecting only to checked addresses."""
        host, port = address
        candidates = self.resolver(host, port)
        # Every address is checked before the first is tried: a name that
        # resolves to a denied address at all is refused, whatever the order.
        for _family, _type, _proto, _name, sockaddr in candidates:
            rule = denied_by(str(sockaddr[0]), self.rules)
            if rule is not None:
                raise AddressDeniedError(host, str(sockaddr[0]), rule)
        last_error: OSError | None = None
        for family, kind, proto, _name, sockaddr in candidates:
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not _DEFAULT_TIMEOUT:
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as error:
                last_error = error
                sock.close()
        if last_error is not None:
            raise last_error
        raise OSError(f"getaddrinfo returned no address for {host}")


class GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, guard: Guard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # http.client opens every socket through this attribute (HTTPS wraps
        # the same socket afterwards, verifying the certificate for the name).
        self._create_connection = guard.create_connection


class GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, guard: Guard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = guard.create_connection


def _check_url_address(guard: Guard, request: urllib.request.Request) -> None:
    # Through a proxy the socket goes to the proxy (checked like any other)
    # and the proxy resolves the target's name, so an address written in the
    # URL is checked here as well; without a proxy this is checked again on
    # connecting, harmlessly.
    guard.check_literal(urlsplit(request.full_url).hostname or "")


def _maker(connection: Callable[..., http.client.HTTPConnection], **fixed: Any) -> Any:
    # urllib calls the class it is given as http_class(host, timeout=...);
    # the guard (and the TLS context) ride along here.
    def make(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        return connection(host, **fixed, **kwargs)

    return make


class GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, guard: Guard) -> None:
        super().__init__()
        self.guard = guard

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        _check_url_address(self.guard, req)
        return self.do_open(_maker(GuardedHTTPConnection, guard=self.guard), req)


class GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, guard: Guard) -> None:
        super().__init__()
        self.guard = guard

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        _check_url_address(self.guard, req)
        context = getattr(self, "_context", None)
        return self.do_open(_maker(GuardedHTTPSConnection, guard=self.guard, context=context), req)
