"""Pod addresses for the node agent: one loopback address per pod.

A kubelet's network plugin gives every pod an address of its own. The agent
runs pods as processes in the host's network namespace, where all of
127.0.0.0/8 reaches the loopback interface, so it hands out addresses of one
/16 of it (127.1.0.0/16 by default): a pod can listen on its address and
other local processes reach it there. An address is held for as long as the
pod exists, never shared between two pods.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator

DEFAULT_POD_RANGE = "127.1.0.0/16"


class PodRangeError(ValueError):
    """The pod range is not a block of loopback addresses, or is used up."""


class PodAddresses:
    def __init__(self, cidr: str = DEFAULT_POD_RANGE) -> None:
        try:
            network = ipaddress.IPv4Network(cidr)
        except ValueError as error:
            raise PodRangeError(
                f"pod range {cidr!r} is not an IPv4 network ({error}); use e.g. 127.1.0.0/16"
            ) from error
        if not network.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise PodRangeError(
                f"pod range {cidr!r} is not inside 127.0.0.0/8; pods share the host's "
                "network, so only loopback addresses are theirs alone"
            )
        self.network = network
        self._by_pod: dict[str, str] = {}
        self._lock = threading.Lock()
        self._cursor = self._candidates()

    def _candidates(self) -> Iterator[ipaddress.IPv4Address]:
        # Round-robin through the range, so a freed address is the last to come back.
        while True:
            yield from self.network.hosts()

    def allocate(self, pod_uid: str) -> str:
        """The pod's address: the one it already holds, or a free one."""
        with self._lock:
            if pod_uid in self._by_pod:
                return self._by_pod[pod_uid]
            taken = set(self._by_pod.values())
            if len(taken) >= self.network.num_addresses - 2:
                raise PodRangeError(
                    f"pod range {self.network} has no free address left "
                    f"({len(taken)} pods hold one)"
                )
            for candidate in self._cursor:
                address = str(candidate)
                if address not in taken:
                    self._by_pod[pod_uid] = address
                    return address
            raise PodRangeError(f"pod range {self.network} has no free address left")

    def reserve(self, pod_uid: str, address: str) -> None:
        """Keep an address a pod already reports (a pod found when the agent starts)."""
        try:
            if ipaddress.IPv4Address(address) not in self.network:
                return
        except ValueError:
            return
        with self._lock:
            self._by_pod.setdefault(pod_uid, address)

    def release(self, pod_uid: str) -> None:
        with self._lock:
            self._by_pod.pop(pod_uid, None)

    def held(self) -> dict[str, str]:
        with self._lock:
            return dict(self._by_pod)
