"""DMARC: record parsing, alignment, organizational-domain fallback, verdicts."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation import dmarc
from federation.dkim import DkimResult
from federation.resolver import Resolver
from federation.spf import SpfResult
from tests.support.dns_server import DnsServer


def spf(result: str, domain: str) -> SpfResult:
    return SpfResult(result, domain, "mailfrom", f"bounce@{domain}")


def dkim_pass(domain: str) -> DkimResult:
    return DkimResult("pass", domain, "sel", "rsa-sha256")


def test_parse_record() -> None:
    r = dmarc.parse_record("v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; pct=50; "
                           "rua=mailto:dmarc@schule.test,mailto:x@y.test; fo=1")
    assert r == dmarc.DmarcRecord("reject", "quarantine", "s", "r", 50,
                                  ("mailto:dmarc@schule.test", "mailto:x@y.test"))
    assert dmarc.parse_record("v=DMARC1;p=none").policy == "none"


@pytest.mark.parametrize("bad", ["p=reject; v=DMARC1", "v=DMARC2; p=reject", "v=DMARC1",
                                 "v=DMARC1; p=block", "v=DMARC1; p=reject; junk"])
def test_parse_invalid(bad: str) -> None:
    with pytest.raises(dmarc.DmarcSyntaxError):
        dmarc.parse_record(bad)


def test_invalid_policy_with_rua_acts_as_none() -> None:
    """RFC 7489 6.6.3: an invalid p= with a valid rua= counts as p=none."""
    assert dmarc.parse_record("v=DMARC1; p=block; rua=mailto:a@b.test").policy == "none"


@given(st.text(max_size=200))
def test_parse_never_crashes(text: str) -> None:
    try:
        record = dmarc.parse_record(text)
    except dmarc.DmarcSyntaxError:
        return
    assert record.policy in dmarc.POLICIES and 0 <= record.pct <= 100


@given(st.lists(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), min_size=2, max_size=5))
def test_organizational_domain_is_a_suffix(labels: list[str]) -> None:
    domain = ".".join(labels)
    org = dmarc.organizational_domain(domain)
    assert domain == org or domain.endswith("." + org)
    assert dmarc.organizational_domain(org) == org


@pytest.mark.parametrize(("domain", "org"), [
    ("schule.test", "schule.test"), ("mail.schule.test", "schule.test"),
    ("a.b.gymnasium.de", "gymnasium.de"), ("www.school.co.uk", "school.co.uk"),
    ("SCHOOL.CO.UK.", "school.co.uk"),
])
def test_organizational_domain(domain: str, org: str) -> None:
    assert dmarc.organizational_domain(domain) == org


def test_alignment_modes() -> None:
    assert dmarc.aligned("mail.schule.test", "schule.test", "r")
    assert not dmarc.aligned("mail.schule.test", "schule.test", "s")
    assert dmarc.aligned("Schule.Test", "schule.test", "s")
    assert not dmarc.aligned("evil.test", "schule.test", "r")
    assert not dmarc.aligned("schule.test.evil.test", "schule.test", "r")


async def test_aligned_spf_pass(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("_dmarc.schule.test", "TXT", "v=DMARC1; p=reject")
    v = await dmarc.evaluate(resolver, "schule.test", spf("pass", "mail.schule.test"), [])
    assert (v.result, v.spf_aligned, v.dkim_aligned, v.reject) == ("pass", True, False, False)


async def test_aligned_dkim_pass(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("_dmarc.schule.test", "TXT", "v=DMARC1; p=reject")
    v = await dmarc.evaluate(resolver, "schule.test", spf("fail", "schule.test"),
                             [dkim_pass("schule.test")])
    assert (v.result, v.dkim_aligned) == ("pass", True)


async def test_misaligned_passes_fail_and_reject(dns_server: DnsServer,
                                                 resolver: Resolver) -> None:
    """SPF and DKIM pass, but for another domain: DMARC fails; p=reject -> reject."""
    dns_server.add("_dmarc.schule.test", "TXT", "v=DMARC1; p=reject")
    v = await dmarc.evaluate(resolver, "schule.test", spf("pass", "bulkmailer.test"),
                             [dkim_pass("bulkmailer.test")])
    assert (v.result, v.policy, v.disposition, v.reject) == ("fail", "reject", "reject", True)


async def test_strict_alignment(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("_dmarc.schule.test", "TXT", "v=DMARC1; p=quarantine; adkim=s; aspf=s")
    v = await dmarc.evaluate(resolver, "schule.test", spf("pass", "mail.schule.test"),
                             [dkim_pass("mail.schule.test")])
    assert (v.result, v.quarantine) == ("fail", True)


async def test_organizational_fallback_and_sp(dns_server: DnsServer,
                                              resolver: Resolver) -> None:
    dns_server.add("_dmarc.schule.test", "TXT", "v=DMARC1; p=reject; sp=quarantine")
    v = await dmarc.evaluate(resolver, "klasse7.schule.test", spf("fail", "x.test"), [])
    assert (v.result, v.record_domain, v.policy) == ("fail", "schule.test", "quarantine")
    assert ("_dmarc.klasse7.schule.test.", "TXT") in dns_server.queries
    # relaxed: a DKIM pass for the organizational domain aligns with the subdomain
    v = await dmarc.evaluate(resolver, "klasse7.schule.test", spf("fail", "x.test"),
                             [dkim_pass("schule.test")])
    assert v.result == "pass"


async def test_no_record_is_none(dns_server: DnsServer, resolver: Resolver) -> None:
    v = await dmarc.evaluate(resolver, "nodmarc.test", spf("fail", "x.test"), [])
    assert (v.result, v.reject, v.quarantine) == ("none", False, False)


async def test_two_records_are_no_policy(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("_dmarc.two.test", "TXT", "v=DMARC1; p=reject")
    dns_server.add("_dmarc.two.test", "TXT", "v=DMARC1; p=none")
    v = await dmarc.evaluate(resolver, "two.test", spf("fail", "x.test"), [])
    assert v.result == "none"


async def test_dns_failure_is_temperror(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.fail("_dmarc.broken.test")
    v = await dmarc.evaluate(resolver, "broken.test", spf("fail", "x.test"), [])
    assert (v.result, v.reject) == ("temperror", False)


async def test_pct_sampling(dns_server: DnsServer, resolver: Resolver) -> None:
    """RFC 7489 6.6.4: messages outside pct get the next less strict policy."""
    dns_server.add("_dmarc.half.test", "TXT", "v=DMARC1; p=reject; pct=50")
    rng = random.Random(7)
    dispositions = [
        (await dmarc.evaluate(resolver, "half.test", spf("fail", "x.test"), [],
                              rng=rng)).disposition for _ in range(200)]
    assert set(dispositions) == {"reject", "quarantine"}
    assert 60 <= dispositions.count("reject") <= 140
