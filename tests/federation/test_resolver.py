"""federation.resolver against a real DNS server on loopback."""

from __future__ import annotations

import collections
import random
import time

import pytest

from federation.resolver import (
    DnsNotFound,
    DnsTemporaryError,
    MxHost,
    NullMx,
    Resolver,
    SrvTarget,
)
from tests.support.dns_server import DnsServer, SilentServer


async def test_mx_sorted_by_preference(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("schule.test", "MX", "20 backup.schule.test.")
    dns_server.add("schule.test", "MX", "5 primary.schule.test.")
    dns_server.add("schule.test", "MX", "10 second.schule.test.")
    hosts = await resolver.mx("schule.test")
    assert hosts == [MxHost(5, "primary.schule.test"), MxHost(10, "second.schule.test"),
                     MxHost(20, "backup.schule.test")]


async def test_mx_random_order_among_equal_preferences(dns_server: DnsServer) -> None:
    """RFC 5321 5.1: equal preferences are tried in random order (spread load)."""
    for host in ("a", "b", "c"):
        dns_server.add("schule.test", "MX", f"10 {host}.schule.test.")
    dns_server.add("schule.test", "MX", "50 last.schule.test.")
    resolver = Resolver([dns_server.host], dns_server.port, rng=random.Random(1234))
    firsts: collections.Counter[str] = collections.Counter()
    runs = 300
    for _ in range(runs):
        hosts = await resolver.mx("schule.test")
        assert [h.preference for h in hosts] == [10, 10, 10, 50]
        assert hosts[-1].host == "last.schule.test"
        firsts[hosts[0].host] += 1
    assert set(firsts) == {"a.schule.test", "b.schule.test", "c.schule.test"}
    for count in firsts.values():  # each ~100 of 300; 60..140 is > 5 sigma wide
        assert 60 <= count <= 140, firsts


async def test_mx_fallback_to_address(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("schule.test", "A", "192.0.2.7")
    assert await resolver.mx("schule.test") == [MxHost(0, "schule.test", implicit=True)]


async def test_mx_fallback_to_aaaa_only(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("v6.test", "AAAA", "2001:db8::7")
    assert await resolver.mx("v6.test") == [MxHost(0, "v6.test", implicit=True)]


async def test_mx_no_mx_no_address_is_empty(dns_server: DnsServer,
                                            resolver: Resolver) -> None:
    dns_server.add("textonly.test", "TXT", "hello")
    assert await resolver.mx("textonly.test") == []


async def test_null_mx(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("nomail.test", "MX", "0 .")
    dns_server.add("nomail.test", "A", "192.0.2.1")
    assert await resolver.mx("nomail.test") == NullMx("nomail.test")


async def test_nxdomain_is_permanent(dns_server: DnsServer, resolver: Resolver) -> None:
    with pytest.raises(DnsNotFound):
        await resolver.mx("nowhere.test")
    with pytest.raises(DnsNotFound):
        await resolver.txt("nowhere.test")


async def test_servfail_is_temporary(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.fail("broken.test")
    with pytest.raises(DnsTemporaryError):
        await resolver.mx("broken.test")


async def test_silent_nameserver_is_temporary() -> None:
    silent = SilentServer()
    await silent.start()
    try:
        resolver = Resolver([silent.host], silent.port, timeout=0.3, lifetime=0.6)
        started = time.monotonic()
        with pytest.raises(DnsTemporaryError):
            await resolver.mx("schule.test")
        assert time.monotonic() - started < 3.0
    finally:
        await silent.stop()


async def test_long_txt_joined(dns_server: DnsServer, resolver: Resolver) -> None:
    value = "v=DKIM1; k=rsa; p=" + "A" * 600
    dns_server.add("sel._domainkey.schule.test", "TXT", value)
    assert await resolver.txt("sel._domainkey.schule.test") == [value]


async def test_large_answer_over_tcp(dns_server: DnsServer, resolver: Resolver) -> None:
    """Over 512 bytes: the UDP answer is truncated and dnspython retries over TCP."""
    values = [f"record-{i}-" + "x" * 200 for i in range(10)]
    for v in values:
        dns_server.add("big.test", "TXT", v)
    assert sorted(await resolver.txt("big.test")) == sorted(values)


async def test_cname_followed(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("alias.test", "CNAME", "real.test.")
    dns_server.add("real.test", "A", "192.0.2.9")
    assert await resolver.a("alias.test") == ["192.0.2.9"]


async def test_srv_and_tlsa(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("_matrix._tcp.schule.test", "SRV", "10 5 8448 matrix.schule.test.")
    dns_server.add("_matrix._tcp.schule.test", "SRV", "0 1 443 m0.schule.test.")
    assert await resolver.srv("_matrix._tcp.schule.test") == [
        SrvTarget(0, 1, 443, "m0.schule.test"), SrvTarget(10, 5, 8448, "matrix.schule.test")]
    dns_server.add("_25._tcp.mail.schule.test", "TLSA", "3 1 1 " + "ab" * 32)
    (tlsa,) = await resolver.tlsa(25, "mail.schule.test")
    assert (tlsa.usage, tlsa.selector, tlsa.mtype, tlsa.data) == (3, 1, 1, b"\xab" * 32)


async def test_srv_service_not_offered(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("_imap._tcp.schule.test", "SRV", "0 0 0 .")
    assert await resolver.srv("_imap._tcp.schule.test") == []


async def test_name_without_type_is_empty_not_nxdomain(dns_server: DnsServer,
                                                       resolver: Resolver) -> None:
    dns_server.add("schule.test", "A", "192.0.2.1")
    assert await resolver.txt("schule.test") == []
    # an empty non-terminal exists too
    dns_server.add("x._domainkey.schule.test", "TXT", "v=DKIM1; p=")
    assert await resolver.txt("_domainkey.schule.test") == []


async def test_answers_are_cached_for_their_ttl(dns_server: DnsServer) -> None:
    """Positive answers for the record TTL, NXDOMAIN for the SOA's negative TTL (RFC 2308)."""
    from tests.support.dns_server import NEGATIVE_TTL, TTL

    now = [time.time()]
    resolver = Resolver([dns_server.host], dns_server.port, cache_size=100,
                        clock=lambda: now[0])
    dns_server.add("schule.test", "TXT", "v=spf1 -all")
    for _ in range(3):
        assert await resolver.txt("Schule.Test") == ["v=spf1 -all"]
        with pytest.raises(DnsNotFound):
            await resolver.txt("_dmarc.nowhere.test")
    assert [(n.lower(), t) for n, t in dns_server.queries] == [
        ("schule.test.", "TXT"), ("_dmarc.nowhere.test.", "TXT")]
    dns_server.add("_dmarc.nowhere.test", "TXT", "v=DMARC1; p=reject")
    now[0] += min(TTL, NEGATIVE_TTL) - 1
    with pytest.raises(DnsNotFound):
        await resolver.txt("_dmarc.nowhere.test")  # still the cached negative answer
    # dnspython's expiration is wall-clock based; step past it as well.
    now[0] += max(TTL, NEGATIVE_TTL) + 2
    assert await resolver.txt("_dmarc.nowhere.test") == ["v=DMARC1; p=reject"]
    assert len(dns_server.queries) == 3


async def test_without_a_cache_every_lookup_asks(dns_server: DnsServer,
                                                 resolver: Resolver) -> None:
    dns_server.add("schule.test", "TXT", "v=spf1 -all")
    for _ in range(3):
        assert await resolver.txt("schule.test") == ["v=spf1 -all"]
    assert len(dns_server.queries) == 3
