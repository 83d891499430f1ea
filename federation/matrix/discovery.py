"""Resolving a server name to where its federation API listens (Matrix
Server-Server API, "Resolving server names").

The steps, in the spec's order: an IP literal or an explicit port is used as
is; otherwise ``https://<name>/.well-known/matrix/server`` may delegate to
another host (which then goes through the same IP/port/SRV steps); then SRV
``_matrix-fed._tcp`` (and the deprecated ``_matrix._tcp``); then port 8448.
The TLS certificate must be valid for the delegated host name (or the server
name when nothing delegates), and the Host header names it too.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from federation.resolver import DnsError, Resolver

log = logging.getLogger("schulhof.federation.matrix")

DEFAULT_PORT = 8448
# A server name: a DNS name or an IP literal (IPv6 in brackets), and an optional port.
_SERVER_NAME = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,255})(?::(\d{1,5}))?$")

# Fetches ``https://<host>/.well-known/matrix/server`` and returns ``m.server``
# (or None when there is no usable answer).
WellKnownFetcher = Callable[[str], Awaitable[str | None]]


class InvalidServerName(ValueError):
    """Not a Matrix server name (spec Appendices "Server Name")."""


@dataclass(frozen=True)
class Destination:
    """Where to connect for a server name, and whom to expect there."""

    server_name: str
    host: str  # to connect to: an IP literal or a DNS name
    port: int
    tls_name: str  # the name the certificate must carry (SNI)
    host_header: str


def split_server_name(name: str) -> tuple[str, int | None]:
    match = _SERVER_NAME.match(name)
    if match is None:
        raise InvalidServerName(name)
    host, port = match.group(1), match.group(2)
    if port is not None and not 0 < int(port) < 65536:
        raise InvalidServerName(name)
    return host, int(port) if port is not None else None


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


class ServerDiscovery:
    """The spec's resolution algorithm over our DNS resolver and a well-known fetcher."""

    def __init__(self, resolver: Resolver, fetch_well_known: WellKnownFetcher) -> None:
        self._resolver = resolver
        self._fetch_well_known = fetch_well_known

    async def resolve(self, server_name: str) -> Destination:
        host, port = split_server_name(server_name)
        direct = self._direct(server_name, host, port)
        if direct is not None:
            return direct
        delegated = await self._fetch_well_known(host)
        if delegated is not None:
            try:
                d_host, d_port = split_server_name(delegated)
            except InvalidServerName:
                log.info("event=matrix_well_known_invalid server=%s", server_name)
            else:
                found = self._direct(server_name, d_host, d_port, delegated)
                return found or await self._by_srv(server_name, d_host, d_host)
        return await self._by_srv(server_name, host, host)

    @staticmethod
    def _direct(server_name: str, host: str, port: int | None,
                host_header: str | None = None) -> Destination | None:
        ip = _ip_literal(host)
        if ip is not None:
            return Destination(server_name, ip, port or DEFAULT_PORT, ip,
                               host_header or server_name)
        if port is not None:
            return Destination(server_name, host, port, host, host_header or f"{host}:{port}")
        return None

    async def _by_srv(self, server_name: str, host: str, host_header: str) -> Destination:
        for service in ("_matrix-fed._tcp", "_matrix._tcp"):
            try:
                targets = await self._resolver.srv(f"{service}.{host}")
            except DnsError:
                continue
            if targets:
                target = targets[0]
                return Destination(server_name, target.target, target.port, host, host_header)
        return Destination(server_name, host, DEFAULT_PORT, host, host_header)
