"""Resolving server names (Server-Server API "Resolving server names"), step by step,
against a real DNS server on loopback and a stand-in for the HTTPS well-known fetch."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.matrix.discovery import (
    Destination,
    InvalidServerName,
    ServerDiscovery,
    split_server_name,
)
from federation.resolver import Resolver
from tests.support.dns_server import DnsServer


def discovery(resolver: Resolver, well_known: dict[str, str]) -> ServerDiscovery:
    async def fetch(host: str) -> str | None:
        return well_known.get(host)
    return ServerDiscovery(resolver, fetch)


async def test_ip_literals_and_explicit_ports_need_no_lookup(resolver: Resolver,
                                                             dns_server: DnsServer) -> None:
    d = discovery(resolver, {"a.test": "elsewhere.test"})
    assert await d.resolve("127.0.0.5") == Destination(
        "127.0.0.5", "127.0.0.5", 8448, "127.0.0.5", "127.0.0.5")
    assert await d.resolve("[::1]:9000") == Destination("[::1]:9000", "::1", 9000, "::1",
                                                        "[::1]:9000")
    assert await d.resolve("a.test:9000") == Destination(
        "a.test:9000", "a.test", 9000, "a.test", "a.test:9000")
    assert dns_server.queries == []


async def test_well_known_delegation_then_srv_of_the_delegated_name(
        resolver: Resolver, dns_server: DnsServer) -> None:
    dns_server.add("_matrix-fed._tcp.matrix.a.test", "SRV", "10 5 8999 fed.a.test.")
    d = discovery(resolver, {"a.test": "matrix.a.test"})
    assert await d.resolve("a.test") == Destination(
        "a.test", "fed.a.test", 8999, "matrix.a.test", "matrix.a.test")


async def test_well_known_delegation_with_port(resolver: Resolver) -> None:
    d = discovery(resolver, {"a.test": "matrix.a.test:443"})
    assert await d.resolve("a.test") == Destination(
        "a.test", "matrix.a.test", 443, "matrix.a.test", "matrix.a.test:443")


async def test_srv_without_well_known_and_the_deprecated_name(
        resolver: Resolver, dns_server: DnsServer) -> None:
    dns_server.add("_matrix-fed._tcp.a.test", "SRV", "10 5 8450 m.a.test.")
    dns_server.add("_matrix._tcp.b.test", "SRV", "10 5 8451 m.b.test.")
    d = discovery(resolver, {})
    assert await d.resolve("a.test") == Destination("a.test", "m.a.test", 8450, "a.test",
                                                    "a.test")
    assert await d.resolve("b.test") == Destination("b.test", "m.b.test", 8451, "b.test",
                                                    "b.test")


async def test_no_records_fall_back_to_8448(resolver: Resolver) -> None:
    d = discovery(resolver, {"a.test": "not a server name!"})  # invalid: ignored
    assert await d.resolve("a.test") == Destination("a.test", "a.test", 8448, "a.test",
                                                    "a.test")


@pytest.mark.parametrize("name", ["", "a b", "a.test:0", "a.test:70000", "[::1", "a.test:",
                                  "https://a.test"])
def test_invalid_server_names(name: str) -> None:
    with pytest.raises(InvalidServerName):
        split_server_name(name)


@given(st.text(max_size=80))
def test_split_never_crashes(text: str) -> None:
    try:
        host, port = split_server_name(text)
    except InvalidServerName:
        return
    assert host and (port is None or 0 < port < 65536)
