"""The address a web request really came from, when a reverse proxy sits in front.

The login throttle (directory.auth) and the rate limits count failures per
client address.  Behind a TLS proxy (the README's advice for the Matrix
port) every request arrives from the proxy: without this, one pupil
guessing passwords would slow down everybody's logins.  So: when the peer
is one of the configured trusted proxies, the client is the right-most
``X-Forwarded-For`` entry that is not itself a trusted proxy (entries to
its left are the client's own claims and could be forged); from any other
peer the header is ignored.  Pure: the HTTP servers call it per request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """Addresses or networks ("127.0.0.1", "10.0.0.0/8"); raises ValueError."""
        return cls(tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries))

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

    def client_address(self, peer: str, forwarded_for: Iterable[str]) -> str:
        """The client's address given the TCP peer and the X-Forwarded-For values."""
        if not self.trusts(peer):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return peer  # a malformed chain: trust nothing of it
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer
