"""The worker under MTA-STS (RFC 8461 4.2, 5) and DANE (RFC 7672): who gets the mail, over what."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from federation.dane import DaneLookup
from federation.mta_sts import FetchConfig, MtaSts, PolicyFetcher
from federation.resolver import Resolver
from federation.smtp_out import ClientConfig, OutboundClient
from mailserver.outbound.sts_store import DatabasePolicyCache
from mailserver.outbound.tls_policy import TlsPolicies
from mailserver.outbound.worker import OutboundWorker
from tests.mailserver.outbound.conftest import Outbound
from tests.mailserver.outbound.dnssec import SecureZone, secure_dns
from tests.mailserver.outbound.pki import Issued, TestCa
from tests.mailserver.outbound.policy_server import PolicyServer
from tests.mailserver.outbound.sink import Sink
from tests.mailserver.outbound.test_worker import mail
from tests.support.dns_server import DnsServer

MX = "mx1.b.test"


def policy(mode: str, *mx: str) -> str:
    return f"version: STSv1\nmode: {mode}\n" + "".join(f"mx: {m}\n" for m in mx) + \
        "max_age: 86400\n"


def tlsa_311(issued: Issued) -> str:
    spki = issued.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"3 1 1 {hashlib.sha256(spki).hexdigest()}"


@dataclass
class Secured:
    outbound: Outbound
    worker: OutboundWorker
    sink: Sink  # the TLS MX of b.test
    ca: TestCa
    policies: PolicyServer
    dns: DnsServer
    zone: SecureZone

    def publish_policy(self, text: str, policy_id: str = "1") -> None:
        self.dns.remove("_mta-sts.b.test", "TXT")
        self.dns.add("_mta-sts.b.test", "TXT", f"v=STSv1; id={policy_id}")
        self.policies.serve(text)

    async def send(self, subject: str) -> int:
        [row] = await self.outbound.submit("paul@a.test", ["anna@b.test"], mail(subject))
        await self.worker.process_due()
        return row

    async def state(self, row: int) -> tuple[str, str | None]:
        entry = await self.outbound.queue.get(row)
        assert entry is not None
        return entry.state, entry.last_error


async def _tls_sink(issued: Issued, port: int) -> Sink:
    return await Sink("127.0.0.4", tls=issued.server_context(), hostname=MX, port=port).start()


@pytest.fixture
async def secured(outbound: Outbound, dns_server: DnsServer,
                  tmp_path: Path) -> AsyncIterator[Secured]:
    ca = TestCa(tmp_path / "ca")
    policies = await PolicyServer(ca.issue(["mta-sts.b.test"]).server_context()).start()
    dns_server.add("mta-sts.b.test", "A", "127.0.0.1")
    # b.test's MX moves to a TLS server on 127.0.0.4 with a certificate from our CA.
    await outbound.sink.stop()
    sink = await _tls_sink(ca.issue([MX], ips=("127.0.0.4",)), outbound.sink.port)
    dns_server.remove(MX, "A")
    dns_server.add(MX, "A", "127.0.0.4")
    zone = secure_dns(dns_server)
    resolver = Resolver([dns_server.host], dns_server.port, timeout=2, lifetime=4)
    fetcher = PolicyFetcher(FetchConfig(ca_file=str(ca.path), port=policies.port),
                            resolver.addresses)
    tls = TlsPolicies(MtaSts(resolver, fetcher, DatabasePolicyCache(outbound.db)),
                      DaneLookup([dns_server.host], dns_server.port, timeout=2, lifetime=4))
    client = OutboundClient(ClientConfig(helo_name="mail.a.test", port=sink.port, timeout=5,
                                         ca_file=str(ca.path)))
    worker = OutboundWorker(outbound.worker.config, outbound.queue, client, resolver, None,
                            outbound.bounces, clock=outbound.clock, tls=tls)
    yield Secured(outbound, worker, sink, ca, policies, dns_server, zone)
    await worker.stop()
    await sink.stop()
    await policies.stop()


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if f"event={name} " in r.getMessage()]


async def test_enforced_policy_delivers_to_a_listed_mx_over_verified_tls(
        secured: Secured) -> None:
    secured.publish_policy(policy("enforce", "*.b.test"))
    row = await secured.send("sts-ok")
    assert await secured.state(row) == ("sent", None)
    assert [m.tls for m in secured.sink.messages] == [True]


async def test_enforced_policy_refuses_an_mx_outside_it(
        secured: Secured, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    secured.publish_policy(policy("enforce", "mx.elsewhere.test"))
    row = await secured.send("sts-mx")
    state, error = await secured.state(row)
    assert state == "queued" and error is not None and error.startswith("451 4.7.5 MTA-STS")
    assert secured.sink.messages == [] and secured.sink.connections == 0
    assert events(caplog, "mta_sts_refused")
    assert secured.outbound.bounces.calls == []  # temporary: no bounce


async def test_enforced_policy_refuses_a_certificate_for_another_name(
        secured: Secured, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await secured.sink.stop()
    secured.sink = await _tls_sink(secured.ca.issue(["other.b.test"], ips=("127.0.0.4",)),
                                   secured.sink.port)
    secured.publish_policy(policy("enforce", MX))
    row = await secured.send("sts-cert")
    state, error = await secured.state(row)
    assert state == "queued" and error is not None and error.startswith("451 4.7.5")
    assert secured.sink.messages == []
    [refused] = events(caplog, "mta_sts_refused")
    assert f"host={MX}" in refused

    # The same server in mode testing: delivered, and the failure reported.
    secured.publish_policy(policy("testing", MX), policy_id="2")
    secured.outbound.clock.advance(hours=1)
    await secured.worker.process_due()
    assert (await secured.state(row))[0] == "sent"
    assert len(secured.sink.messages) == 1
    assert events(caplog, "mta_sts_testing_failure")


async def test_no_policy_is_opportunistic(secured: Secured) -> None:
    await secured.sink.stop()
    secured.sink = await _tls_sink(TestCa(secured.ca.directory / "x", "X").issue([MX]),
                                   secured.sink.port)
    row = await secured.send("no-sts")
    assert (await secured.state(row))[0] == "sent"
    assert secured.policies.requests == []


async def test_dane_match_delivers_even_where_the_trust_store_says_no(
        secured: Secured) -> None:
    # A certificate from nobody's CA, pinned by a validated TLSA record.
    await secured.sink.stop()
    pinned = TestCa(secured.ca.directory / "self", "Self").issue([MX], ips=("127.0.0.4",))
    secured.sink = await _tls_sink(pinned, secured.sink.port)
    secured.dns.add(f"_25._tcp.{MX}", "TLSA", tlsa_311(pinned))
    secured.zone.mark_secure(MX, f"_25._tcp.{MX}")
    secured.publish_policy(policy("enforce", MX))  # DANE takes precedence for this host
    row = await secured.send("dane-ok")
    assert (await secured.state(row))[0] == "sent"
    assert [m.tls for m in secured.sink.messages] == [True]


async def test_dane_mismatch_is_a_temporary_failure(
        secured: Secured, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    stranger = TestCa(secured.ca.directory / "s", "Stranger").issue([MX])
    secured.dns.add(f"_25._tcp.{MX}", "TLSA", tlsa_311(stranger))
    secured.zone.mark_secure(MX, f"_25._tcp.{MX}")
    row = await secured.send("dane-bad")
    state, error = await secured.state(row)
    assert state == "queued" and error is not None and "DANE" in error
    assert error.startswith("451 4.7.5")
    assert secured.sink.messages == []
    assert events(caplog, "dane_refused")

    # The same records without the AD flag are not trusted: opportunistic delivery.
    secured.zone.secure.clear()
    secured.outbound.clock.advance(hours=1)
    await secured.worker.process_due()
    assert (await secured.state(row))[0] == "sent"
