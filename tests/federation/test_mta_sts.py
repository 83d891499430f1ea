"""MTA-STS (RFC 8461): parsing, fetching over loopback HTTPS, the database cache."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from directory.db import Database
from federation.mta_sts import (
    ENFORCE,
    MAX_POLICY_BYTES,
    FetchConfig,
    MtaSts,
    PolicyError,
    PolicyFetcher,
    PolicyFetchError,
    StsPolicy,
    mx_matches,
    parse_policy,
    parse_sts_record,
)
from federation.resolver import Resolver
from mailserver.outbound.sts_store import DatabasePolicyCache
from tests.mailserver.outbound.pki import TestCa
from tests.mailserver.outbound.policy_server import PolicyServer
from tests.support.dns_server import DnsServer

# RFC 8461 3.2's example.
RFC_POLICY = ("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
              "mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n")
POLICY = "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n"


# --- parsing ---------------------------------------------------------------------------------
def test_rfc_example_policy() -> None:
    policy = parse_policy(RFC_POLICY)
    assert policy == StsPolicy(ENFORCE, ("mail.example.com", "*.example.net",
                                         "backupmx.example.com"), 604800)
    assert policy.matches("mail.example.com") and policy.matches("MX1.example.net.")
    assert not policy.matches("a.b.example.net") and not policy.matches("example.net")
    assert not policy.matches("evil.example.com")


def test_rfc_example_record_and_bad_records() -> None:
    assert parse_sts_record("v=STSv1; id=20160831085700Z;").id == "20160831085700Z"
    assert parse_sts_record("v=STSv1;id=abc;ext=1").id == "abc"
    for bad in ("id=1; v=STSv1", "v=STSv2; id=1", "v=STSv1", "v=STSv1; id=a-b",
                "v=STSv1; id=" + "a" * 33, "v=STSv1; id=1; id=2", "v=STSv1; junk"):
        with pytest.raises(PolicyError):
            parse_sts_record(bad)


@pytest.mark.parametrize("text", [
    "mode: enforce\nmx: a.test\nmax_age: 1\n",  # no version
    "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",
    "version: STSv1\nmode: enforce\nmax_age: 1\n",  # no mx
    "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n",
    "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n",
    "version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1\n",
    "version: STSv1\nmode: enforce\nmx: *.*.test\nmax_age: 1\n",
    "version: STSv1\nmode enforce\nmx: a.test\nmax_age: 1\n",
])
def test_invalid_policies(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(text)


def test_mode_none_needs_no_mx_and_extensions_are_ignored() -> None:
    policy = parse_policy("version: STSv1\nmode: none\nmax_age: 0\nfuture: x\n")
    assert policy.mode == "none" and policy.mx == () and not policy.matches("a.test")


label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(label, min_size=2, max_size=4).map(".".join)
patterns = st.one_of(hostnames, hostnames.map(lambda h: "*." + h))


@given(st.sampled_from(["enforce", "testing", "none"]), st.lists(patterns, min_size=1,
                                                                 max_size=5),
       st.integers(0, 31557600))
def test_policy_round_trip(mode: str, mx: list[str], max_age: int) -> None:
    policy = StsPolicy(mode, tuple(dict.fromkeys(mx)), max_age)
    assert parse_policy(policy.to_text()) == policy
    assert parse_policy(policy.to_text().replace("\r\n", "\n")) == policy


@given(st.text(max_size=300))
def test_parsers_raise_only_policy_error(text: str) -> None:
    for parse in (parse_policy, parse_sts_record):
        try:
            parse(text)
        except PolicyError:
            pass


@given(label, hostnames)
def test_wildcard_covers_exactly_one_label(first: str, domain: str) -> None:
    assert mx_matches(f"*.{domain}", f"{first}.{domain}")
    assert mx_matches(domain, domain.upper() + ".")
    assert not mx_matches(f"*.{domain}", domain)
    assert not mx_matches(f"*.{domain}", f"x.{first}.{domain}")
    assert not mx_matches(f"{first}.{domain}", f"x{first}.{domain}")


# --- fetching over HTTPS ------------------------------------------------------------------
@dataclass
class Https:
    server: PolicyServer
    ca: TestCa
    dns: DnsServer
    resolver: Resolver

    def fetcher(self, ca_file: str | None = None, **kwargs: float) -> PolicyFetcher:
        config = FetchConfig(ca_file=ca_file or str(self.ca.path), port=self.server.port,
                             **kwargs)
        return PolicyFetcher(config, self.resolver.addresses)


@pytest.fixture
async def https(tmp_path: Path, dns_server: DnsServer, resolver: Resolver
                ) -> AsyncIterator[Https]:
    ca = TestCa(tmp_path / "ca")
    issued = ca.issue(["mta-sts.b.test"])
    server = await PolicyServer(issued.server_context()).start()
    dns_server.add("mta-sts.b.test", "A", "127.0.0.1")
    server.serve(POLICY)
    yield Https(server, ca, dns_server, resolver)
    await server.stop()


async def test_fetch_a_policy_over_verified_https(https: Https) -> None:
    policy = await https.fetcher().fetch("B.test")
    assert policy == StsPolicy(ENFORCE, ("mx.b.test",), 86400)
    assert https.server.requests == [f"mta-sts.b.test:{https.server.port}"
                                     "/.well-known/mta-sts.txt"]


@pytest.mark.parametrize("reply,error", [
    ({"status": 404}, "HTTP status 404"),
    ({"status": 302, "headers": {"Location": "https://evil.test/"}}, "HTTP status 302"),
    ({"content_type": "text/html"}, "content type"),
])
async def test_fetch_refuses_non_200_redirects_and_wrong_types(
        https: Https, reply: dict[str, object], error: str) -> None:
    https.server.serve(POLICY, **reply)
    with pytest.raises(PolicyFetchError, match=error):
        await https.fetcher().fetch("b.test")


async def test_fetch_refuses_big_invalid_slow_untrusted_and_unknown(https: Https,
                                                                    tmp_path: Path) -> None:
    https.server.serve(POLICY + "x: " + "y" * MAX_POLICY_BYTES + "\n")
    with pytest.raises(PolicyFetchError, match="too large"):
        await https.fetcher().fetch("b.test")
    https.server.serve("version: STSv1\nmode: enforce\n")
    with pytest.raises(PolicyFetchError, match="invalid policy"):
        await https.fetcher().fetch("b.test")
    https.server.serve(POLICY, delay=2.0)
    with pytest.raises(PolicyFetchError, match="Timeout"):
        await https.fetcher(total_timeout=0.5).fetch("b.test")
    https.server.serve(POLICY)
    other = TestCa(tmp_path / "other", "Other CA")
    with pytest.raises(PolicyFetchError, match=r"(?i)certificate"):
        await https.fetcher(ca_file=str(other.path)).fetch("b.test")
    with pytest.raises(PolicyFetchError, match="DNSError"):
        await https.fetcher().fetch("c.test")  # mta-sts.c.test does not exist


# --- the cached lookup --------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


async def test_policy_is_cached_refetched_on_new_id_and_kept_when_dns_fails(
        https: Https, db: Database) -> None:
    clock = Clock()
    sts = MtaSts(https.resolver, https.fetcher(), DatabasePolicyCache(db), clock=clock)
    dns, server = https.dns, https.server
    assert await sts.policy("b.test") is None  # no TXT record: no policy, no fetch
    assert server.requests == []

    dns.add("_mta-sts.b.test", "TXT", "v=STSv1; id=one")
    first = await sts.policy("b.test")
    assert first is not None and first.mx == ("mx.b.test",)
    assert await sts.policy("b.test") == first
    assert len(server.requests) == 1  # same id: from the cache

    # A new process (new objects) sees the cached policy in the database.
    again = MtaSts(https.resolver, https.fetcher(), DatabasePolicyCache(db), clock=clock)
    assert await again.policy("b.test") == first and len(server.requests) == 1

    server.serve(POLICY.replace("mx.b.test", "*.b.test"))
    dns.remove("_mta-sts.b.test")
    dns.add("_mta-sts.b.test", "TXT", "v=STSv1; id=two")
    second = await sts.policy("b.test")
    assert second is not None and second.mx == ("*.b.test",) and len(server.requests) == 2

    # An attacker removes the TXT record or breaks the policy server: the cache holds.
    dns.remove("_mta-sts.b.test")
    assert await sts.policy("b.test") == second
    dns.add("_mta-sts.b.test", "TXT", "v=STSv1; id=three")
    server.serve("broken")
    assert await sts.policy("b.test") == second
    dns.fail("_mta-sts.b.test")
    assert await sts.policy("b.test") == second

    # Until max_age runs out.
    clock.now += dt.timedelta(seconds=86401)
    assert await sts.policy("b.test") is None


async def test_two_sts_records_mean_no_policy(https: Https, db: Database) -> None:
    https.dns.add("_mta-sts.b.test", "TXT", "v=STSv1; id=one")
    https.dns.add("_mta-sts.b.test", "TXT", "v=STSv1; id=two")
    https.dns.add("_mta-sts.b.test", "TXT", "something else")
    sts = MtaSts(https.resolver, https.fetcher(), DatabasePolicyCache(db))
    assert await sts.policy("b.test") is None and https.server.requests == []
