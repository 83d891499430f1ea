"""Issue 19.1: mail in the school's own name is decided with the school's own keys, no DNS.

An outsider who makes DNS fail (or answers it) must not get a From in the school's
domain delivered: such mail passes only with a DKIM signature that verifies
against the school's local key.  Other domains keep DMARC; their temperror is
accepted but never trusted.
"""

from __future__ import annotations

import pytest

from federation.dkim import DkimSigner, LocalKeys
from federation.keys import SchoolKeyPaths, generate_school_keys, load_dkim_keys
from federation.mail_auth import authenticate_inbound
from federation.resolver import Resolver
from tests.support.dns_server import DnsServer

OURS = "mail.schule.test"
OWN = ("schule.test", "gymnasium.test")


def message(from_field: bytes) -> bytes:
    return (b"From: " + from_field + b"\r\nTo: paul@schule.test\r\nSubject: Hausaufgaben\r\n"
            b"Message-ID: <m1@example>\r\n\r\nBitte bis morgen.\r\n")


@pytest.fixture(scope="module")
def school_keys(tmp_path_factory: pytest.TempPathFactory):
    paths = SchoolKeyPaths.in_dir(tmp_path_factory.mktemp("school-keys"))
    generate_school_keys(paths)
    return load_dkim_keys(paths)


@pytest.fixture(scope="module")
def attacker_keys(tmp_path_factory: pytest.TempPathFactory):
    paths = SchoolKeyPaths.in_dir(tmp_path_factory.mktemp("attacker-keys"))
    generate_school_keys(paths)
    return load_dkim_keys(paths)


@pytest.fixture
def local(school_keys) -> LocalKeys:
    return LocalKeys.of(OWN, school_keys)


async def check(msg: bytes, resolver: Resolver, local: LocalKeys):
    return await authenticate_inbound(msg, "203.0.113.66", "spam@outside.example",
                                      "outside.example", resolver, OURS, local_keys=local)


@pytest.mark.parametrize("from_field", [
    b"<lehrerin@schule.test>",
    b"Frau Lehrerin <lehrerin@schule.test>",
    b"lehrerin@SCHULE.TEST",
    b"lehrerin@gymnasium.test",
    b"lehrerin@schule.test, spam@outside.example",      # two domains: DMARC permerror
    b"Gruppe: lehrerin@schule.test;",                    # a group
    b"(Kommentar) lehrerin@schule.test (noch einer)",
    b"\"x\"\r\n <lehrerin@schule.test>",                 # folded
], ids=["angle", "named", "upper", "extra-domain", "two-domains", "group", "comments",
        "folded"])
async def test_unsigned_own_domain_is_rejected_while_dns_fails(
        dns_server: DnsServer, resolver: Resolver, local: LocalKeys, from_field: bytes) -> None:
    for name in ("schule.test", "gymnasium.test", "outside.example"):
        dns_server.fail(f"_dmarc.{name}")
        dns_server.fail(name)
    verdict = await check(message(from_field), resolver, local)
    assert verdict.reject and verdict.dmarc.own_domain, verdict.dmarc
    assert not verdict.trusted


async def test_two_from_fields_one_own_is_rejected(resolver: Resolver, local: LocalKeys) -> None:
    msg = b"From: spam@outside.example\r\n" + message(b"lehrerin@schule.test")
    verdict = await check(msg, resolver, local)
    assert verdict.reject and verdict.dmarc.own_domain


async def test_signed_with_the_school_key_passes_without_dns(
        dns_server: DnsServer, resolver: Resolver, local: LocalKeys, school_keys) -> None:
    """The school's own outbound mail coming back to its MX (no DNS record needed)."""
    dns_server.fail("_dmarc.schule.test")
    for key in school_keys:
        dns_server.fail(f"{key.selector}._domainkey.schule.test")
    signed = await DkimSigner("schule.test", school_keys).sign(message(b"<lehrerin@schule.test>"))
    verdict = await check(signed, resolver, local)
    assert verdict.dmarc.result == "pass" and verdict.trusted and not verdict.reject
    assert [r.result for r in verdict.dkim] == ["pass", "pass"]
    assert not any(name.endswith("schule.test") for name, _ in dns_server.queries
                   if "_domainkey" in name or "_dmarc" in name)


async def test_a_key_published_in_dns_by_someone_else_does_not_count(
        dns_server: DnsServer, resolver: Resolver, local: LocalKeys, attacker_keys) -> None:
    """A spoofed DNS answer with the attacker's key under our domain is never asked."""
    for key in attacker_keys:
        dns_server.add(f"{key.selector}._domainkey.schule.test", "TXT", key.dns_txt)
    dns_server.add("_dmarc.schule.test", "TXT", "v=DMARC1; p=none")
    signed = await DkimSigner("schule.test", attacker_keys).sign(
        message(b"<lehrerin@schule.test>"))
    verdict = await check(signed, resolver, local)
    assert [r.result for r in verdict.dkim] == ["permerror", "permerror"]  # no such local key
    assert verdict.reject and verdict.dmarc.own_domain


async def test_tampered_school_mail_is_rejected(resolver: Resolver, local: LocalKeys,
                                                school_keys) -> None:
    signed = await DkimSigner("schule.test", school_keys).sign(message(b"<lehrerin@schule.test>"))
    verdict = await check(signed.replace(b"bis morgen", b"bis heute"), resolver, local)
    assert verdict.reject


async def test_other_domain_temperror_is_accepted_but_not_trusted(
        dns_server: DnsServer, resolver: Resolver, local: LocalKeys) -> None:
    dns_server.fail("_dmarc.partner.test")
    dns_server.fail("partner.test")
    verdict = await check(message(b"Paula <paula@partner.test>"), resolver, local)
    assert verdict.dmarc.result == "temperror"
    assert not verdict.reject and not verdict.quarantine and not verdict.trusted
    assert b"dmarc=temperror" in verdict.header
    assert not verdict.dmarc.own_domain


async def test_display_name_with_our_address_is_not_an_own_domain(
        resolver: Resolver, local: LocalKeys) -> None:
    """The address decides; a display name naming a teacher is the webmail's business."""
    verdict = await check(message(b"\"lehrerin@schule.test\" <spam@outside.example>"),
                          resolver, local)
    assert not verdict.dmarc.own_domain
