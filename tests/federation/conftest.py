"""Fixtures for federation tests: a DNS server on loopback and a resolver pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from federation.resolver import Resolver
from tests.support.dns_server import DnsServer


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    """A real DNS server on 127.0.0.1 (UDP and TCP) answering from a zone tests fill."""
    server = DnsServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def resolver(dns_server: DnsServer) -> Resolver:
    return Resolver([dns_server.host], dns_server.port, timeout=2.0, lifetime=4.0)
