"""DKIM signing and verification through the loopback DNS server."""

from __future__ import annotations

import base64
from pathlib import Path

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation import dkim
from federation.keys import (
    DKIM_ED25519,
    DKIM_RSA,
    SchoolKeyPaths,
    generate_school_keys,
    load_dkim_keys,
)
from federation.resolver import Resolver
from tests.support.dns_server import DnsServer
from tests.support.properties import examples

MESSAGE = (
    b"From: Anna Lehrerin <anna@schule.test>\r\n"
    b"To: Ben <ben@partner.test>\r\n"
    b"Subject: Klassenfahrt\r\n"
    b"Date: Mon, 07 Sep 2026 08:00:00 +0200\r\n"
    b"Message-ID: <m1@schule.test>\r\n"
    b"\r\n"
    b"Liebe Klasse,\r\nwir fahren am Montag.\r\n"
)


@pytest.fixture(scope="module")
def school_keys(tmp_path_factory: pytest.TempPathFactory):
    paths = SchoolKeyPaths.in_dir(tmp_path_factory.mktemp("keys"))
    generate_school_keys(paths)
    return load_dkim_keys(paths)


def publish(dns_server: DnsServer, keys, domain: str = "schule.test") -> None:
    for key in keys:
        dns_server.add(f"{key.selector}._domainkey.{domain}", "TXT", key.dns_txt)


async def test_sign_with_both_keys_and_verify(dns_server: DnsServer, resolver: Resolver,
                                              school_keys) -> None:
    publish(dns_server, school_keys)
    signed = await dkim.DkimSigner("schule.test", school_keys).sign(MESSAGE)
    assert signed.endswith(MESSAGE)
    results = await dkim.verify(signed, resolver)
    rsa_key, ed_key = school_keys
    assert [(r.result, r.domain, r.selector, r.algorithm) for r in results] == [
        ("pass", "schule.test", rsa_key.selector, DKIM_RSA),
        ("pass", "schule.test", ed_key.selector, DKIM_ED25519),
    ]
    # the key records came from our DNS server
    assert (f"{ed_key.selector}._domainkey.schule.test.", "TXT") in dns_server.queries


async def test_modified_body_fails(dns_server: DnsServer, resolver: Resolver,
                                   school_keys) -> None:
    publish(dns_server, school_keys)
    signed = await dkim.DkimSigner("schule.test", school_keys).sign(MESSAGE)
    tampered = signed.replace(b"am Montag", b"am Dienstag")
    results = await dkim.verify(tampered, resolver)
    assert [r.result for r in results] == ["fail", "fail"]
    assert "body hash" in results[0].reason


async def test_modified_signed_header_fails(dns_server: DnsServer, resolver: Resolver,
                                            school_keys) -> None:
    publish(dns_server, school_keys)
    signed = await dkim.DkimSigner("schule.test", school_keys).sign(MESSAGE)
    results = await dkim.verify(signed.replace(b"Klassenfahrt", b"Wandertag"), resolver)
    assert [r.result for r in results] == ["fail", "fail"]


async def test_extra_from_is_caught_by_oversigning(dns_server: DnsServer, resolver: Resolver,
                                                   school_keys) -> None:
    publish(dns_server, school_keys)
    signed = await dkim.DkimSigner("schule.test", school_keys).sign(MESSAGE)
    forged = signed.replace(b"From: Anna", b"From: Mallory <m@evil.test>\r\nFrom: Anna")
    assert [r.result for r in await dkim.verify(forged, resolver)] == ["fail", "fail"]


async def test_missing_key_is_permerror(dns_server: DnsServer, resolver: Resolver,
                                        school_keys) -> None:
    """RFC 6376 6.1.2: no key record -> PERMFAIL (permerror in RFC 8601 terms)."""
    signed = await dkim.DkimSigner("schule.test", school_keys).sign(MESSAGE)
    results = await dkim.verify(signed, resolver)
    assert [(r.result, r.reason) for r in results] == [("permerror", "no key")] * 2


async def test_unreachable_key_is_temperror(dns_server: DnsServer, resolver: Resolver,
                                            school_keys) -> None:
    """RFC 6376 6.1.2: the key query failed to respond -> TEMPFAIL."""
    rsa_key, ed_key = school_keys
    dns_server.fail(f"{rsa_key.selector}._domainkey.schule.test")
    dns_server.add(f"{ed_key.selector}._domainkey.schule.test", "TXT", ed_key.dns_txt)
    signed = await dkim.DkimSigner("schule.test", school_keys).sign(MESSAGE)
    assert [r.result for r in await dkim.verify(signed, resolver)] == ["temperror", "pass"]


async def test_revoked_or_garbled_key_is_permerror(dns_server: DnsServer, resolver: Resolver,
                                                   school_keys) -> None:
    rsa_key, ed_key = school_keys
    dns_server.add(f"{rsa_key.selector}._domainkey.schule.test", "TXT", "v=DKIM1; k=rsa; p=")
    dns_server.add(f"{ed_key.selector}._domainkey.schule.test", "TXT",
                   "v=DKIM1; k=ed25519; p=bm90IGEga2V5")
    signed = await dkim.DkimSigner("schule.test", school_keys).sign(MESSAGE)
    assert [r.result for r in await dkim.verify(signed, resolver)] == ["permerror"] * 2


async def test_wrong_key_fails(dns_server: DnsServer, resolver: Resolver, school_keys,
                               tmp_path: Path) -> None:
    """A key record for a different key: the signature does not verify."""
    other_paths = SchoolKeyPaths.in_dir(tmp_path)
    generate_school_keys(other_paths)
    other = load_dkim_keys(other_paths)
    for mine, theirs in zip(school_keys, other, strict=True):
        dns_server.add(f"{mine.selector}._domainkey.schule.test", "TXT", theirs.dns_txt)
    signed = await dkim.DkimSigner("schule.test", school_keys).sign(MESSAGE)
    assert [r.result for r in await dkim.verify(signed, resolver)] == ["fail", "fail"]


async def test_unsigned_message_has_no_results(resolver: Resolver) -> None:
    assert await dkim.verify(MESSAGE, resolver) == []


async def test_malformed_signature_is_permerror(resolver: Resolver) -> None:
    message = b"DKIM-Signature: v=1; a=rsa-sha256; d=schule.test\r\n" + MESSAGE
    (result,) = await dkim.verify(message, resolver)
    assert result.result == "permerror"
    assert result.domain == "schule.test"


async def test_signer_for_school_reads_key_files(dns_server: DnsServer, resolver: Resolver,
                                                tmp_path: Path) -> None:
    paths = SchoolKeyPaths.in_dir(tmp_path)
    generate_school_keys(paths)
    signer = await dkim.DkimSigner.for_school("schule.test", paths)
    publish(dns_server, signer.keys)
    results = await dkim.verify(await signer.sign(MESSAGE), resolver)
    assert [r.result for r in results] == ["pass", "pass"]


def test_selectors_derive_from_public_keys(school_keys) -> None:
    rsa_key, ed_key = school_keys
    assert rsa_key.selector.startswith("rsa-") and ed_key.selector.startswith("ed-")
    assert len(rsa_key.selector) == len("rsa-") + 8
    assert rsa_key.dns_txt.startswith("v=DKIM1; k=rsa; p=MII")
    assert ed_key.dns_txt.startswith("v=DKIM1; k=ed25519; p=")


# --- RFC 8463 Appendix A: the published example verifies with dkimpy ---------------

RFC8463_SIGNED = (
    b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    b" d=football.example.com; i=@football.example.com;\r\n"
    b" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    b" subject : date : message-id : from : subject : date;\r\n"
    b" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    b" b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
    b" Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
    b" d=football.example.com; i=@football.example.com;\r\n"
    b" q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
    b" date : message-id : from : subject : date;\r\n"
    b" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    b" b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
    b" DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
    b" dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n"
    b"From: Joe SixPack <joe@football.example.com>\r\n"
    b"To: Suzie Q <suzie@shopping.example.net>\r\n"
    b"Subject: Is dinner ready?\r\n"
    b"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    b"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    b"\r\n"
    b"Hi.\r\n"
    b"\r\n"
    b"We lost the game.  Are you hungry yet?\r\n"
    b"\r\n"
    b"Joe.\r\n"
    b"\r\n"
)
RFC8463_ED25519 = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
RFC8463_RSA = (
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
    "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"
    "DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
    "Ip3G+2kryOTIKT+l/K4w3QIDAQAB"
)


async def test_rfc8463_example_verifies(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.add("brisbane._domainkey.football.example.com", "TXT", RFC8463_ED25519)
    dns_server.add("test._domainkey.football.example.com", "TXT", RFC8463_RSA)
    results = await dkim.verify(RFC8463_SIGNED, resolver)
    assert [(r.result, r.selector, r.algorithm) for r in results] == [
        ("pass", "brisbane", DKIM_ED25519), ("pass", "test", DKIM_RSA)]
    tampered = RFC8463_SIGNED.replace(b"hungry", b"angry")
    assert [r.result for r in await dkim.verify(tampered, resolver)] == ["fail", "fail"]


def test_rfc8463_ed25519_signature_reproduced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ed25519 is deterministic: signing the example with the RFC's private key at the
    RFC's t= gives the RFC's b= byte for byte (dkimpy writes the tags in the RFC's order)."""
    seed = base64.b64decode("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    assert base64.b64encode(public).decode() == RFC8463_ED25519.split("p=")[1]
    unsigned = RFC8463_SIGNED[RFC8463_SIGNED.index(b"From: Joe"):]
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    monkeypatch.setattr(dkimpy.time, "time", lambda: 1528637909)
    header = dkim.sign(unsigned, "football.example.com", "brisbane", pem, DKIM_ED25519,
                       ["from", "to", "subject", "date", "message-id", "from", "subject",
                        "date"])
    unfolded = b"".join(header.split())
    assert b"bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=" in unfolded
    assert unfolded.endswith(b"b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus"
                             b"Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==")


# --- robustness: verification never crashes on hostile signatures --------------------

@settings(max_examples=examples(60), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200))
async def test_arbitrary_signature_field_never_crashes(resolver: Resolver, value: str) -> None:
    message = b"DKIM-Signature: " + value.encode() + b"\r\n" + MESSAGE
    results = await dkim.verify(message, resolver)
    assert all(r.result in {"fail", "permerror", "temperror"} for r in results)


@pytest.mark.parametrize(("message", "expected"), [
    (b"A: b\r\nDKIM-Signature: x\r\n\r\nbody", b"A: b\r\nDKIM-Signature: x\r\n"),
    (b"A: b\n\nDKIM-Signature: in the body\n", b"A: b\n"),
    (b"A: b\r\nno body", b"A: b\r\nno body"),
])
def test_header_section_ends_at_the_first_empty_line(message: bytes, expected: bytes) -> None:
    assert dkim._header_section(message) == expected


async def test_small_messages_are_verified_without_a_thread_big_ones_in_one(
        dns_server: DnsServer, resolver: Resolver, school_keys,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Up to VERIFY_INLINE bytes the verification runs on the event loop (two
    thread hops per message cost as much as the work); a bigger message's
    parsing and hashing go to a worker thread, as before."""
    publish(dns_server, school_keys)
    signer = dkim.DkimSigner("schule.test", school_keys)
    small = await signer.sign(MESSAGE)
    big = await signer.sign(MESSAGE + b"x" * 76 * 1000 + b"\r\n")
    calls: list[str] = []
    real = dkim.asyncio.to_thread

    async def to_thread(function, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(function.__name__)
        return await real(function, *args, **kwargs)

    monkeypatch.setattr(dkim.asyncio, "to_thread", to_thread)
    assert [r.result for r in await dkim.verify(small, resolver)] == ["pass", "pass"]
    assert calls == []
    assert [r.result for r in await dkim.verify(big, resolver)] == ["pass", "pass"]
    assert calls == ["_parse_signatures", "_check"]


async def test_the_verifier_parses_only_the_header_block_with_dkimpy(
        dns_server: DnsServer, resolver: Resolver, school_keys,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A message with CRLF line ends is not split into lines and joined again
    to verify it (dkim.parse_message); the results are dkimpy's."""
    publish(dns_server, school_keys)
    signed = await dkim.DkimSigner("schule.test", school_keys).sign(
        MESSAGE + b"Zeile\r\n" * 500)
    header_block = signed.index(b"\r\n\r\n") + 2
    parsed: list[int] = []
    real = dkimpy.rfc822_parse

    def rfc822_parse(message: bytes):  # type: ignore[no-untyped-def]
        parsed.append(len(message))
        return real(message)

    monkeypatch.setattr(dkimpy, "rfc822_parse", rfc822_parse)
    assert [r.result for r in await dkim.verify(signed, resolver)] == ["pass", "pass"]
    assert parsed and max(parsed) <= header_block
    tampered = signed.replace(b"Zeile\r\nZeile", b"Zeile\r\nZeil", 1)
    assert [r.result for r in await dkim.verify(tampered, resolver)] == ["fail", "fail"]
