"""SPF: RFC 7208 Appendix A examples and limits, through the loopback DNS server."""

from __future__ import annotations

import ipaddress

import pytest

from federation.resolver import Resolver
from federation.spf import check_spf
from tests.support.dns_server import DnsServer


def rfc7208_zone(dns: DnsServer, spf: str) -> None:
    """The DNS data of RFC 7208 Appendix A, with ``spf`` at example.com."""
    dns.add("example.com", "TXT", spf)
    for name, address in [
        ("example.com", "192.0.2.10"), ("example.com", "192.0.2.11"),
        ("amy.example.com", "192.0.2.65"), ("bob.example.com", "192.0.2.66"),
        ("mail-a.example.com", "192.0.2.129"), ("mail-b.example.com", "192.0.2.130"),
        ("mail-c.example.org", "192.0.2.140"),
    ]:
        dns.add(name, "A", address)
    dns.add("www.example.com", "CNAME", "example.com.")
    dns.add("example.com", "MX", "10 mail-a.example.com.")
    dns.add("example.com", "MX", "20 mail-b.example.com.")
    dns.add("example.org", "MX", "10 mail-c.example.org.")
    for ip, name in [
        ("192.0.2.10", "example.com."), ("192.0.2.11", "example.com."),
        ("192.0.2.65", "amy.example.com."), ("192.0.2.66", "bob.example.com."),
        ("192.0.2.129", "mail-a.example.com."), ("192.0.2.130", "mail-b.example.com."),
        ("192.0.2.140", "mail-c.example.org."), ("10.0.0.4", "bob.example.com."),
    ]:
        dns.add(ipaddress.ip_address(ip).reverse_pointer, "PTR", name)


CANDIDATES = ["192.0.2.10", "192.0.2.11", "192.0.2.65", "192.0.2.66", "192.0.2.129",
              "192.0.2.130", "192.0.2.131", "192.0.2.140", "192.0.2.141", "192.0.2.200",
              "10.0.0.4"]


async def passing(resolver: Resolver) -> set[str]:
    out = set()
    for ip in CANDIDATES:
        result = await check_spf(resolver, ip, "joe@example.com", "mx.example.com")
        assert result.result in ("pass", "fail"), (ip, result)
        if result.result == "pass":
            out.add(ip)
    return out


@pytest.mark.parametrize(("record", "expected"), [
    ("v=spf1 +all", set(CANDIDATES)),
    ("v=spf1 a -all", {"192.0.2.10", "192.0.2.11"}),
    ("v=spf1 a:example.org -all", set()),
    ("v=spf1 mx -all", {"192.0.2.129", "192.0.2.130"}),
    ("v=spf1 mx:example.org -all", {"192.0.2.140"}),
    ("v=spf1 mx mx:example.org -all", {"192.0.2.129", "192.0.2.130", "192.0.2.140"}),
    ("v=spf1 mx/30 mx:example.org/30 -all",
     {"192.0.2.129", "192.0.2.130", "192.0.2.131", "192.0.2.140", "192.0.2.141"}),
    ("v=spf1 ptr -all",
     {"192.0.2.10", "192.0.2.11", "192.0.2.65", "192.0.2.66", "192.0.2.129", "192.0.2.130"}),
    ("v=spf1 ip4:192.0.2.128/28 -all",
     {"192.0.2.129", "192.0.2.130", "192.0.2.131", "192.0.2.140", "192.0.2.141"}),
])
async def test_rfc7208_appendix_a1(dns_server: DnsServer, resolver: Resolver,
                                   record: str, expected: set[str]) -> None:
    rfc7208_zone(dns_server, record)
    assert await passing(resolver) == expected


async def test_rfc7208_appendix_a4_multiple_requirements(dns_server: DnsServer,
                                                         resolver: Resolver) -> None:
    """The A.4 shape: pass only from 192.0.2.0/24 AND with a PTR name under example.com.

    The ptr record names example.com explicitly: a bare "ptr" inside the included
    record would compare against ptr._spf.example.com, the current <domain> there."""
    rfc7208_zone(dns_server,
                 "v=spf1 -include:ip4._spf.%{d} -include:ptr._spf.%{d} +all")
    dns_server.add("ip4._spf.example.com", "TXT", "v=spf1 -ip4:192.0.2.0/24 +all")
    dns_server.add("ptr._spf.example.com", "TXT", "v=spf1 -ptr:example.com +all")
    assert await passing(resolver) == {
        "192.0.2.10", "192.0.2.11", "192.0.2.65", "192.0.2.66", "192.0.2.129", "192.0.2.130"}


async def test_rfc7208_appendix_a3_dnsbl_style_exists(dns_server: DnsServer,
                                                      resolver: Resolver) -> None:
    """A.3-style: exists: with %{ir} builds a per-client name."""
    rfc7208_zone(dns_server, "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all")
    dns_server.add("10.2.0.192.joe._spf.example.com", "A", "127.0.0.2")
    assert await passing(resolver) == {"192.0.2.10"}


@pytest.mark.parametrize(("record", "result"), [
    ("v=spf1 -all", "fail"),
    ("v=spf1 ~all", "softfail"),
    ("v=spf1 ?all", "neutral"),
    ("v=spf1", "neutral"),
    ("v=spf1 ip4:198.51.100.0/24", "neutral"),
    ("v=spf1 foo:bar -all", "permerror"),
    ("v=spf1 ip4:300.1.1.1 -all", "permerror"),
    ("v=spf1 a:%{q}.example.com -all", "permerror"),
    ("v=spf1 redirect=a.example.com redirect=b.example.com", "permerror"),
    ("v=spf1 unknown-modifier=%{d} -all", "fail"),
    ("v=spf10 +all", "none"),
])
async def test_results(dns_server: DnsServer, resolver: Resolver, record: str,
                       result: str) -> None:
    dns_server.add("sender.test", "TXT", record)
    got = await check_spf(resolver, "192.0.2.1", "a@sender.test", "helo.test")
    assert got.result == result, got


async def test_no_record_and_nxdomain_are_none(dns_server: DnsServer,
                                               resolver: Resolver) -> None:
    dns_server.add("norecord.test", "TXT", "some other text")
    assert (await check_spf(resolver, "192.0.2.1", "a@norecord.test", "h.test")).result \
        == "none"
    assert (await check_spf(resolver, "192.0.2.1", "a@nowhere.test", "h.test")).result \
        == "none"


async def test_two_records_are_permerror(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("two.test", "TXT", "v=spf1 -all")
    dns_server.add("two.test", "TXT", "v=spf1 +all")
    assert (await check_spf(resolver, "192.0.2.1", "a@two.test", "h.test")).result \
        == "permerror"


async def test_dns_failure_is_temperror(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.fail("broken.test")
    assert (await check_spf(resolver, "192.0.2.1", "a@broken.test", "h.test")).result \
        == "temperror"
    dns_server.add("inc.test", "TXT", "v=spf1 include:broken.test -all")
    assert (await check_spf(resolver, "192.0.2.1", "a@inc.test", "h.test")).result \
        == "temperror"


async def test_include_of_missing_record_is_permerror(dns_server: DnsServer,
                                                      resolver: Resolver) -> None:
    dns_server.add("inc.test", "TXT", "v=spf1 include:nothing.test -all")
    assert (await check_spf(resolver, "192.0.2.1", "a@inc.test", "h.test")).result \
        == "permerror"


async def test_redirect(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("alias.test", "TXT", "v=spf1 redirect=real.test")
    dns_server.add("real.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    assert (await check_spf(resolver, "192.0.2.1", "a@alias.test", "h.test")).result == "pass"
    assert (await check_spf(resolver, "198.51.100.1", "a@alias.test", "h.test")).result \
        == "fail"


async def test_null_sender_checks_helo(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("mx.sender.test", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    result = await check_spf(resolver, "192.0.2.1", "", "mx.sender.test")
    assert (result.result, result.identity, result.sender) == (
        "pass", "helo", "postmaster@mx.sender.test")


async def test_ipv6_and_mapped_ipv4(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("v6.test", "TXT", "v=spf1 ip6:2001:db8::/32 a:host.v6.test//64 "
                   "ip4:192.0.2.0/24 -all")
    dns_server.add("host.v6.test", "AAAA", "2001:db9:1:2::1")
    for ip, expected in [("2001:db8::5", "pass"), ("2001:db9:1:2::ffff", "pass"),
                         ("2001:db9:1:3::1", "fail"), ("::ffff:192.0.2.9", "pass")]:
        assert (await check_spf(resolver, ip, "a@v6.test", "h.test")).result == expected, ip


async def test_lookup_limit_of_ten(dns_server: DnsServer, resolver: Resolver) -> None:
    """RFC 7208 4.6.4: the 11th DNS-querying term is a permerror."""
    for i in range(12):
        dns_server.add(f"h{i}.limit.test", "A", "198.51.100.1")
    ten = " ".join(f"a:h{i}.limit.test" for i in range(10))
    dns_server.add("ten.test", "TXT", f"v=spf1 {ten} ip4:192.0.2.1 -all")
    dns_server.add("eleven.test", "TXT", f"v=spf1 {ten} a:h10.limit.test ip4:192.0.2.1 -all")
    assert (await check_spf(resolver, "192.0.2.1", "a@ten.test", "h.test")).result == "pass"
    result = await check_spf(resolver, "192.0.2.1", "a@eleven.test", "h.test")
    assert result.result == "permerror" and "10 DNS lookups" in result.reason


async def test_lookup_limit_counts_across_includes(dns_server: DnsServer,
                                                   resolver: Resolver) -> None:
    for i in range(12):
        dns_server.add(f"c{i}.chain.test", "TXT", f"v=spf1 include:c{i + 1}.chain.test")
    dns_server.add("c12.chain.test", "TXT", "v=spf1 +all")
    result = await check_spf(resolver, "192.0.2.1", "a@c0.chain.test", "h.test")
    assert result.result == "permerror"


async def test_include_loop_is_permerror(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("loop.test", "TXT", "v=spf1 include:loop.test -all")
    assert (await check_spf(resolver, "192.0.2.1", "a@loop.test", "h.test")).result \
        == "permerror"


async def test_void_lookup_limit(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("void.test", "TXT",
                   "v=spf1 a:x1.void.test a:x2.void.test a:x3.void.test +all")
    dns_server.add("twovoid.test", "TXT", "v=spf1 a:x1.void.test a:x2.void.test +all")
    assert (await check_spf(resolver, "192.0.2.1", "a@void.test", "h.test")).result \
        == "permerror"
    assert (await check_spf(resolver, "192.0.2.1", "a@twovoid.test", "h.test")).result \
        == "pass"


async def test_mx_with_more_than_ten_names(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("manymx.test", "TXT", "v=spf1 mx -all")
    for i in range(11):
        dns_server.add("manymx.test", "MX", f"{i} m{i}.manymx.test.")
    assert (await check_spf(resolver, "192.0.2.1", "a@manymx.test", "h.test")).result \
        == "permerror"


async def test_long_record_split_in_strings(dns_server: DnsServer, resolver: Resolver) -> None:
    nets = " ".join(f"ip4:198.51.{i}.0/24" for i in range(40))
    record = f"v=spf1 {nets} ip4:192.0.2.1 -all"
    assert len(record) > 255
    dns_server.add("long.test", "TXT", record)
    assert (await check_spf(resolver, "192.0.2.1", "a@long.test", "h.test")).result == "pass"
