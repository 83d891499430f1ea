"""authenticate_inbound: SPF + DKIM + DMARC together, as the SMTP layer will call it."""

from __future__ import annotations

import pytest

from federation.dkim import DkimSigner
from federation.keys import SchoolKeyPaths, generate_school_keys, load_dkim_keys
from federation.mail_auth import authenticate_inbound
from federation.resolver import Resolver
from tests.support.dns_server import DnsServer

OURS = "mail.schule.test"
MESSAGE = (b"From: Paula <paula@partner.test>\r\n"
           b"To: anna@schule.test\r\n"
           b"Subject: Austausch\r\n"
           b"Message-ID: <x1@partner.test>\r\n"
           b"\r\n"
           b"Hallo Anna!\r\n")


@pytest.fixture(scope="module")
def partner_keys(tmp_path_factory: pytest.TempPathFactory):
    paths = SchoolKeyPaths.in_dir(tmp_path_factory.mktemp("partner-keys"))
    generate_school_keys(paths)
    return load_dkim_keys(paths)


@pytest.fixture
def partner_zone(dns_server: DnsServer, partner_keys) -> DnsServer:
    """What partner.test publishes, as `schulhof dns-records` tells it to."""
    dns_server.add("partner.test", "MX", "10 mail.partner.test.")
    dns_server.add("mail.partner.test", "A", "192.0.2.25")
    dns_server.add("partner.test", "TXT", "v=spf1 mx -all")
    dns_server.add("_dmarc.partner.test", "TXT", "v=DMARC1; p=reject")
    for key in partner_keys:
        dns_server.add(f"{key.selector}._domainkey.partner.test", "TXT", key.dns_txt)
    return dns_server


async def test_signed_mail_from_partner_passes(partner_zone: DnsServer, resolver: Resolver,
                                               partner_keys) -> None:
    signed = await DkimSigner("partner.test", partner_keys).sign(MESSAGE)
    forged = b"Authentication-Results: mail.schule.test; dmarc=pass\r\n" + signed
    verdict = await authenticate_inbound(forged, "192.0.2.25", "bounce@partner.test",
                                         "mail.partner.test", resolver, OURS)
    assert verdict.spf.result == "pass"
    assert [r.result for r in verdict.dkim] == ["pass", "pass"]
    assert (verdict.dmarc.result, verdict.reject, verdict.quarantine) == ("pass", False, False)
    delivered = verdict.apply(forged)
    assert delivered.startswith(b"Authentication-Results: mail.schule.test;")
    assert delivered.count(b"Authentication-Results") == 1  # the forged one is gone
    assert delivered.endswith(signed)
    assert b"spf=pass" in verdict.header and b"dmarc=pass" in verdict.header


async def test_forged_sender_is_rejected(partner_zone: DnsServer, resolver: Resolver) -> None:
    """Unsigned, from an address partner.test does not list: DMARC p=reject -> reject."""
    verdict = await authenticate_inbound(MESSAGE, "203.0.113.66", "paula@partner.test",
                                         "evil.test", resolver, OURS)
    assert verdict.spf.result == "fail"
    assert verdict.dkim == ()
    assert (verdict.dmarc.result, verdict.reject) == ("fail", True)
    assert b"dkim=none" in verdict.header and b"dmarc=fail" in verdict.header


async def test_forwarded_mail_passes_by_dkim(partner_zone: DnsServer, resolver: Resolver,
                                             partner_keys) -> None:
    """A forwarder breaks SPF; the aligned DKIM signature still carries DMARC."""
    signed = await DkimSigner("partner.test", partner_keys).sign(MESSAGE)
    verdict = await authenticate_inbound(signed, "198.51.100.9", "fwd@forwarder.test",
                                         "forwarder.test", resolver, OURS)
    assert verdict.spf.result == "none"
    assert (verdict.dmarc.result, verdict.dmarc.dkim_aligned, verdict.reject) == (
        "pass", True, False)


async def test_tampered_mail_from_right_ip_passes_by_spf_only(
        partner_zone: DnsServer, resolver: Resolver, partner_keys) -> None:
    signed = await DkimSigner("partner.test", partner_keys).sign(MESSAGE)
    tampered = signed.replace(b"Hallo Anna", b"Hallo Bert")
    verdict = await authenticate_inbound(tampered, "192.0.2.25", "bounce@partner.test",
                                         "mail.partner.test", resolver, OURS)
    assert [r.result for r in verdict.dkim] == ["fail", "fail"]
    assert (verdict.dmarc.result, verdict.dmarc.spf_aligned) == ("pass", True)
