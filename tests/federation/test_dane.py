"""DANE for SMTP (RFC 7672): TLSA checks on generated certificates, lookups, the client."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from federation.dane import NO_TLSA, DaneLookup, TlsaAnswer, verify_chain
from federation.resolver import DnsTemporaryError, TlsaRecord
from federation.smtp_out import ClientConfig, OutboundClient, TlsRefused, TlsRequirement
from tests.mailserver.outbound.dnssec import SecureZone, secure_dns
from tests.mailserver.outbound.pki import Issued, TestCa
from tests.mailserver.outbound.sink import Sink
from tests.support.dns_server import DnsServer

HOST = "mx.b.test"
NOW = dt.datetime.now(dt.UTC)
MESSAGE = b"From: paul@a.test\r\nTo: anna@b.test\r\nSubject: DANE\r\n\r\nText\r\n"


def spki(der_cert_holder: Issued | TestCa) -> bytes:
    return der_cert_holder.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCa, Issued, TestCa]:
    tmp = tmp_path_factory.mktemp("pki")
    ca = TestCa(tmp / "ca")
    return ca, ca.issue([HOST]), TestCa(tmp / "other", "Other CA")


# --- verify_chain --------------------------------------------------------------------------
def test_dane_ee_matches_the_leaf_whatever_its_name_or_dates(
        pki: tuple[TestCa, Issued, TestCa], tmp_path: Path) -> None:
    ca, leaf, _ = pki
    chain = [leaf.der, ca.der]
    for record in (TlsaRecord(3, 1, 1, sha256(spki(leaf))), TlsaRecord(3, 0, 0, leaf.der),
                   TlsaRecord(3, 0, 2, hashlib.sha512(leaf.der).digest())):
        result = verify_chain(chain, [record], "other.name.test", NOW)
        assert result.ok and result.usage == 3
    expired = ca.issue(["elsewhere.test"], expired=True)
    assert verify_chain([expired.der], [TlsaRecord(3, 1, 1, sha256(spki(expired)))],
                        HOST, NOW).ok
    wrong = verify_chain(chain, [TlsaRecord(3, 1, 1, sha256(spki(ca)))], HOST, NOW)
    assert not wrong.ok and "no TLSA record matches" in wrong.reason


def test_dane_ta_needs_the_chain_the_name_and_validity(
        pki: tuple[TestCa, Issued, TestCa]) -> None:
    ca, leaf, other = pki
    ta = TlsaRecord(2, 1, 1, sha256(spki(ca)))
    assert verify_chain([leaf.der, ca.der], [ta], HOST, NOW).ok
    assert verify_chain([leaf.der, ca.der], [ta], "MX.B.TEST.", NOW).ok
    assert "not valid for" in verify_chain([leaf.der, ca.der], [ta], "mx.c.test", NOW).reason
    # The anchor matched but the leaf is not signed by it.
    stranger = other.issue([HOST])
    assert not verify_chain([stranger.der, ca.der], [ta], HOST, NOW).ok
    # Only the leaf sent: the anchor must be in the record in full (2 0 0).
    assert not verify_chain([leaf.der], [ta], HOST, NOW).ok
    assert verify_chain([leaf.der], [TlsaRecord(2, 0, 0, ca.der)], HOST, NOW).ok
    expired = ca.issue([HOST], expired=True)
    assert "expired" in verify_chain([expired.der, ca.der], [ta], HOST, NOW).reason
    # The leaf itself is no trust anchor.
    assert not verify_chain([leaf.der], [TlsaRecord(2, 1, 1, sha256(spki(leaf)))],
                            HOST, NOW).ok


def test_pkix_usages_and_unknown_types_are_unusable(pki: tuple[TestCa, Issued, TestCa]) -> None:
    ca, leaf, _ = pki
    records = [TlsaRecord(1, 1, 1, sha256(spki(leaf))), TlsaRecord(0, 1, 1, sha256(spki(ca))),
               TlsaRecord(3, 2, 1, sha256(spki(leaf))), TlsaRecord(3, 1, 9, b"x")]
    assert verify_chain([leaf.der, ca.der], records, HOST, NOW).reason == (
        "no usable TLSA record")


@given(st.lists(st.binary(max_size=80), max_size=3),
       st.lists(st.builds(TlsaRecord, st.integers(0, 4), st.integers(0, 2),
                          st.integers(0, 3), st.binary(max_size=64)), max_size=4))
def test_verify_chain_never_raises_on_garbage(chain: list[bytes],
                                              records: list[TlsaRecord]) -> None:
    assert not verify_chain(chain, records, HOST, NOW).ok


# --- validated lookups ------------------------------------------------------------------------
@pytest.fixture
async def secure_dns_server() -> AsyncIterator[tuple[DnsServer, SecureZone]]:
    server = DnsServer()
    zone = secure_dns(server)
    await server.start()
    yield server, zone
    await server.stop()


async def test_tlsa_counts_only_when_validated(
        secure_dns_server: tuple[DnsServer, SecureZone]) -> None:
    server, zone = secure_dns_server
    lookup = DaneLookup([server.host], server.port, timeout=1, lifetime=2)
    digest = "ab" * 32
    for host in ("secure.b.test", "insecure.b.test", "unsigned-tlsa.b.test"):
        server.add(host, "A", "127.0.0.1")
        server.add(f"_25._tcp.{host}", "TLSA", f"3 1 1 {digest}")
    zone.mark_secure("secure.b.test", "_25._tcp.secure.b.test", "unsigned-tlsa.b.test")
    answer = await lookup.lookup("secure.b.test")
    assert answer.applies and answer.records == (TlsaRecord(3, 1, 1, bytes.fromhex(digest)),)
    assert await lookup.lookup("insecure.b.test") == NO_TLSA  # address records insecure
    unsigned = await lookup.lookup("unsigned-tlsa.b.test")
    assert not unsigned.applies and unsigned.usable_records == ()

    server.add("notlsa.b.test", "A", "127.0.0.1")
    zone.mark_secure("notlsa.b.test", "_25._tcp.notlsa.b.test")
    assert not (await lookup.lookup("notlsa.b.test")).applies
    server.add("broken.b.test", "A", "127.0.0.1")
    zone.mark_secure("broken.b.test")
    server.fail("_25._tcp.broken.b.test")
    with pytest.raises(DnsTemporaryError):
        await lookup.lookup("broken.b.test")
    assert isinstance(await lookup.lookup("nonexistent.b.test"), TlsaAnswer)


# --- the client ---------------------------------------------------------------------------
@pytest.fixture
async def dane_sink(pki: tuple[TestCa, Issued, TestCa]) -> AsyncIterator[Sink]:
    _, leaf, _ = pki
    sink = await Sink(tls=leaf.server_context(), hostname=HOST).start()
    yield sink
    await sink.stop()


def client(port: int) -> OutboundClient:
    return OutboundClient(ClientConfig(helo_name="mail.a.test", port=port, timeout=5.0))


async def test_client_delivers_when_tlsa_matches_without_trusting_the_ca(
        dane_sink: Sink, pki: tuple[TestCa, Issued, TestCa]) -> None:
    ca, leaf, _ = pki
    for record in (TlsaRecord(3, 1, 1, sha256(spki(leaf))), TlsaRecord(2, 1, 1, sha256(spki(ca)))):
        connection = await client(dane_sink.port).connect(
            HOST, "127.0.0.1", TlsRequirement(tlsa=(record,), dane=True))
        result = await connection.send("paul@a.test", ["anna@b.test"], MESSAGE)
        await connection.close()
        assert result.tls.dane and result.tls.verified and result.delivered == ("anna@b.test",)
        assert "dane=true" in result.tls.log_fields()
    assert len(dane_sink.messages) == 2 and all(m.tls for m in dane_sink.messages)


async def test_client_refuses_a_mismatch_and_a_server_without_tls(
        dane_sink: Sink, pki: tuple[TestCa, Issued, TestCa]) -> None:
    _, _, other = pki
    wrong = TlsRequirement(tlsa=(TlsaRecord(2, 1, 1, sha256(spki(other))),), dane=True)
    with pytest.raises(TlsRefused, match="DANE"):
        await client(dane_sink.port).connect(HOST, "127.0.0.1", wrong)
    plain = await Sink(hostname=HOST).start()
    try:
        with pytest.raises(TlsRefused, match="STARTTLS not offered"):
            await client(plain.port).connect(HOST, "127.0.0.1", wrong)
        # Secure records, none usable: TLS is still a must (RFC 7672 2.2).
        unusable = TlsRequirement(tlsa=(TlsaRecord(1, 1, 1, b"x" * 32),), dane=True)
        with pytest.raises(TlsRefused):
            await client(plain.port).connect(HOST, "127.0.0.1", unusable)
        connection = await client(dane_sink.port).connect(HOST, "127.0.0.1", unusable)
        assert connection.tls.encrypted and not connection.tls.dane
        await connection.close()
    finally:
        await plain.stop()
    assert dane_sink.messages == []
