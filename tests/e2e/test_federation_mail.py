"""Mail between two schools in one test run, over real sockets, real TLS and real DNS.

School A (a.test) listens on 127.0.0.2, school B (b.test) on 127.0.0.3, both
with their own database, certificate and DKIM keys.  A loopback DNS server
publishes MX, A, SPF, DKIM and DMARC (p=reject) for both; each school's
resolver points at it, and both MX listeners use one port number (free on
both addresses), which is each school's ``remote_smtp_port``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from conf.app import School
from conf.commands.school import KEYS_DIR
from conf.settings import FederationSettings, Settings
from conf.wiring import outbound as outbound_wiring
from conf.wiring import smtp as smtp_wiring
from directory.model import Role
from federation.keys import SchoolKeyPaths, load_dkim_keys
from mailserver.outbound.queue import OutboundQueue
from mailserver.store import MailboxNotFound
from tests.support.dns_server import DnsServer
from tests.support.mail_assertions import (
    assert_authentication_passed,
    assert_delivered,
    assert_failure_dsn,
    assert_forgery_refused_by_dmarc,
)
from tests.support.schools import make_settings
from tests.support.smtp_clients import client_tls_context, make_message

A_IP, B_IP = "127.0.0.2", "127.0.0.3"
PASSWORDS = {"paul": "Paul-Schueler-1", "anna": "Anna-Lehrerin-1"}


def common_free_port(*hosts: str) -> int:
    """A port number free on every one of ``hosts`` (for both schools' MX)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind((hosts[0], 0))
            port = first.getsockname()[1]
            others = []
            try:
                for host in hosts[1:]:
                    s = socket.socket()
                    others.append(s)
                    s.bind((host, port))
            except OSError:
                continue
            finally:
                for s in others:
                    s.close()
            return port
    raise RuntimeError("no common free port")


def publish(dns: DnsServer, settings: Settings, ip: str) -> None:
    """The records `schulhof dns-records` would print, for loopback addresses."""
    domain, host = settings.school.domain, settings.smtp_hostname
    dns.add(domain, "MX", f"10 {host}.")
    dns.add(host, "A", ip)
    dns.add(domain, "TXT", f"v=spf1 ip4:{ip} -all")
    dns.add(host, "TXT", f"v=spf1 ip4:{ip} -all")
    for key in load_dkim_keys(SchoolKeyPaths.in_dir(settings.base_dir / KEYS_DIR)):
        dns.add(f"{key.selector}._domainkey.{domain}", "TXT", key.dns_txt)
    dns.add(f"_dmarc.{domain}", "TXT", "v=DMARC1; p=reject")


@dataclass
class Mail:
    """One school with only its mail services running (SMTP listeners and the queue)."""

    school: School
    ip: str
    ids: dict[str, int]
    services: list[Any] = dataclasses.field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.school.settings

    async def start(self, *, smtp: bool = True,
                    trust: outbound_wiring.OutboundTrust | None = None) -> None:
        services = smtp_wiring.build(self.school) if smtp else []
        services += ([outbound_wiring.OutboundService(self.school, trust)] if trust
                     else outbound_wiring.build(self.school))
        for service in services:
            await service.start()
            self.services.append(service)

    async def stop_smtp(self) -> None:
        from mailserver.smtp import SmtpService

        for service in [s for s in self.services if isinstance(s, SmtpService)]:
            await service.stop()
            self.services.remove(service)

    async def start_smtp(self) -> None:
        for service in smtp_wiring.build(self.school):
            await service.start()
            self.services.append(service)

    async def stop(self) -> None:
        for service in reversed(self.services):
            await service.stop()
        self.services = []

    async def inbox(self, login: str) -> list[email.message.Message]:
        try:
            stored = await self.school.mail_store.read_mailbox(self.ids[login])
        except MailboxNotFound:
            return []
        return [email.message_from_bytes(m.body, policy=email.policy.compat32)
                for m in stored]

    async def submit(self, login: str, to: list[str], message: bytes) -> None:
        """Submission (587) with STARTTLS and AUTH, as a mail client does."""
        smtp = aiosmtplib.SMTP(hostname=self.ip, port=self.settings.listen.submission,
                               start_tls=True, tls_context=client_tls_context(self.settings),
                               local_hostname="client.test", timeout=10)
        await smtp.connect()
        try:
            await smtp.login(login, PASSWORDS[login])
            await smtp.sendmail(f"{login}@{self.settings.school.domain}", to, message)
        finally:
            await smtp.quit()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


@dataclass
class Federation:
    a: Mail
    b: Mail
    dns: DnsServer


async def two_schools(tmp_path: Path, fresh_database_url: Callable[[], str]
                      ) -> tuple[Mail, Mail, DnsServer]:
    """School A (a pupil, paul) and school B (a teacher, anna), each with its own
    database and keys, their records in a started loopback DNS server; services
    not started yet.  Both MX listen on one port number, the remote SMTP port."""
    dns = DnsServer()
    await dns.start()
    mx_port = common_free_port(A_IP, B_IP)
    fed = FederationSettings(dns_nameservers=(dns.host,), dns_port=dns.port, dns_cache=False,
                             remote_smtp_port=mx_port, first_retry_seconds=1.0)
    mails = []
    for name, ip, partner, login, role in (("a", A_IP, "b.test", "paul", Role.PUPIL),
                                           ("b", B_IP, "a.test", "anna", Role.TEACHER)):
        # The factory runs its own event loop on PostgreSQL: not in this one.
        url = await asyncio.to_thread(fresh_database_url)
        settings = make_settings(tmp_path / name, url, domain=f"{name}.test",
                                 bind=ip, partners=(partner,), federation=fed)
        settings = dataclasses.replace(
            settings, listen=dataclasses.replace(settings.listen, smtp=mx_port))
        publish(dns, settings, ip)
        school = await School.open(settings, migrate=False)
        account = await school.directory.create_account(role=role, login=login,
                                                        password=PASSWORDS[login])
        mails.append(Mail(school, ip, {login: account.id}))
    a, b = mails
    return a, b, dns


@pytest.fixture
async def federation(tmp_path: Path, fresh_database_url: Callable[[], str]
                     ) -> AsyncIterator[Federation]:
    a, b, dns = await two_schools(tmp_path, fresh_database_url)
    await b.start()
    await a.start()
    yield Federation(a, b, dns)
    for mail in (a, b):
        await mail.stop()
        await mail.school.close()
    await dns.stop()


async def test_pupil_mails_teacher_at_partner_school_and_gets_the_reply(
        federation: Federation) -> None:
    a, b = federation.a, federation.b
    marker, message = make_message(sender="paul@a.test", to=["anna@b.test"],
                                   subject="Frage zur Hausaufgabe")
    await a.submit("paul", ["anna@b.test"], message)
    [received] = await eventually(lambda: b.inbox("anna"))
    assert_delivered(received, marker=marker, signed_by="a.test")

    async def sent_recipients() -> list[str]:
        # Remote 250s are marked sent in shared commits: just after B has the mail.
        return [e.recipient for e in await OutboundQueue(a.school.db).entries(("sent",))]

    assert await eventually(sent_recipients) == ["anna@b.test"]

    reply_marker, reply = make_message(sender="anna@b.test", to=["paul@a.test"],
                                       subject="Re: Frage zur Hausaufgabe")
    await b.submit("anna", ["paul@a.test"], reply)
    [answer] = await eventually(lambda: a.inbox("paul"))
    assert_delivered(answer, marker=reply_marker, signed_by="b.test")


async def test_queued_while_partner_is_down_then_delivered(federation: Federation) -> None:
    a, b = federation.a, federation.b
    await b.stop_smtp()
    marker, message = make_message(sender="paul@a.test", to=["anna@b.test"])
    await a.submit("paul", ["anna@b.test"], message)
    queue = OutboundQueue(a.school.db)

    async def deferred() -> bool:
        entries = await queue.entries(("queued",))
        return bool(entries) and entries[0].attempts >= 1 and bool(entries[0].last_error)

    await eventually(deferred)
    [entry] = await queue.entries(("queued",))
    assert entry.last_error.startswith("451 4.4.1")
    assert await b.inbox("anna") == []

    await b.start_smtp()
    [received] = await eventually(lambda: b.inbox("anna"), timeout=30)
    assert received["X-Test-Id"] == marker

    # The remote 250s of a lane are marked sent in shared commits: just after B has it.
    async def only_sent() -> bool:
        states = [e.state for e in await queue.entries(("queued", "delivering", "sent"))]
        assert "queued" not in states, states  # delivered once, never queued again
        return states == ["sent"]

    await eventually(only_sent)
    assert await a.inbox("paul") == []  # no bounce, no delay warning
    # The metrics count each attempt's outcome per recipient.
    assert deliveries(a.school, "deferred") >= 1
    assert deliveries(a.school, "sent") == 1 and deliveries(a.school, "bounced") == 0


def deliveries(school: School, result: str) -> float:
    return school.metrics.registry.get_sample_value(
        "schulhof_outbound_deliveries_total", {"result": result}) or 0.0


async def test_unknown_recipient_at_partner_bounces_to_sender_inbox(
        federation: Federation) -> None:
    a = federation.a
    _, message = make_message(sender="paul@a.test", to=["nobody@b.test"],
                              subject="An niemanden")
    await a.submit("paul", ["nobody@b.test"], message)
    [dsn] = await eventually(lambda: a.inbox("paul"))
    assert_failure_dsn(dsn, recipient="nobody@b.test", remote_mta="mail.b.test",
                       original_subject="An niemanden")
    # The DSN is delivered before the row is marked bounced and counted: wait for that.
    await eventually(lambda: _true(deliveries(a.school, "bounced") == 1), timeout=10)
    assert deliveries(a.school, "sent") == 0


async def test_partner_mx_authenticates_and_rejects_forgeries(
        federation: Federation) -> None:
    a, b = federation.a, federation.b
    _, message = make_message(sender="paul@a.test", to=["anna@b.test"])
    await a.submit("paul", ["anna@b.test"], message)
    [received] = await eventually(lambda: b.inbox("anna"))
    assert_authentication_passed(received)

    # A forgery: From paul@a.test, unsigned, from an address SPF does not allow.
    await assert_forgery_refused_by_dmarc(B_IP, b.settings.listen.smtp, source_ip="127.0.0.9",
                                          sender="paul@a.test", recipient="anna@b.test")
    assert [m["Subject"] for m in await b.inbox("anna")] == [received["Subject"]]


# --- SIGKILL of a sending server ------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
QUEUED_MESSAGES = 30


def start_server(config: Path, log: Path) -> Any:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHULHOF_")}
    return subprocess.Popen(
        [sys.executable, "-m", "conf.cli", "--config", str(config), "serve"],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=log.open("ab"))


async def sent_count(settings: Settings) -> int:
    from directory.db import Database

    db = Database(settings.database_url)
    try:
        return len(await OutboundQueue(db).entries(("sent",), limit=10_000))
    finally:
        await db.dispose()


@pytest.mark.timeout(180)
async def test_sigkill_with_a_full_queue_delivers_each_message_once(
        tmp_path: Path, database_url: str) -> None:
    import collections
    import signal

    from conf.settings import render_settings_toml
    from mailserver.delivery import Envelope
    from tests.mailserver.outbound.sink import Sink

    dns = DnsServer()
    await dns.start()
    sink = await Sink("127.0.0.1", hostname="mx.b.test").start()
    sink.handler.rcpt_delay = 0.05
    sink.handler.gate_data = False  # see SinkHandler.gate_data
    dns.add("b.test", "MX", "10 mx.b.test.")
    dns.add("mx.b.test", "A", "127.0.0.1")
    settings = make_settings(
        tmp_path / "a", database_url, domain="a.test",
        federation=FederationSettings(dns_nameservers=(dns.host,), dns_port=dns.port,
                                      dns_cache=False,
                                      remote_smtp_port=sink.port, first_retry_seconds=1.0))
    school = await School.open(settings, migrate=False)
    await school.directory.create_account(role=Role.TEACHER, login="paul")
    markers = []
    for i in range(QUEUED_MESSAGES):
        marker, message = make_message(sender="paul@a.test", to=[f"r{i % 7}@b.test"])
        tx = school.mail_store.begin(Envelope("paul@a.test", dt_now()))
        tx.add_remote(f"r{i % 7}@b.test")
        await tx.commit(message)
        markers.append(marker)
    await school.close()
    config = settings.base_dir / "schulhof.toml"
    config.write_text(render_settings_toml(settings), encoding="utf-8")
    log = tmp_path / "server.log"

    def counts() -> collections.Counter[str]:
        return collections.Counter(
            email.message_from_bytes(m.data)["X-Test-Id"] for m in sink.messages)

    proc = start_server(config, log)
    try:
        await eventually(lambda: _true(len(sink.messages) >= 5), timeout=60)
        # Hold every further transaction at RCPT, let the server record the ones it
        # got, then kill it while the rest of the queue is in flight or waiting.
        sink.handler.gate.clear()
        # A transaction past RCPT when the gate closed still finishes its DATA: give
        # it time, so the counts below are final and not a passing equality.
        await asyncio.sleep(1.0)
        await eventually(lambda: _equal(sent_count(settings), len(sink.messages)))
        delivered_before = len(sink.messages)
        assert delivered_before < QUEUED_MESSAGES, "the queue drained before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        sink.handler.gate.set()

        proc = start_server(config, log)
        await eventually(lambda: _true(len(counts()) == QUEUED_MESSAGES), timeout=90)
        await eventually(lambda: _equal(sent_count(settings), QUEUED_MESSAGES), timeout=30)
        await asyncio.sleep(1.0)  # a duplicate would come now, if at all
        found = counts()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        await sink.stop()
        await dns.stop()
    assert sorted(found) == sorted(markers)
    assert set(found.values()) == {1}, [m for m, n in found.items() if n > 1]
    assert "event=outbound_recovered" in log.read_text()


def dt_now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


async def _true(value: bool) -> bool:
    return value


async def _equal(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


# --- MTA-STS between the schools -------------------------------------------------------------
async def test_mta_sts_enforced_between_schools(tmp_path: Path,
                                                fresh_database_url: Callable[[], str]) -> None:
    """B publishes an enforce policy (RFC 8461); A fetches it over HTTPS, caches it,
    delivers over verified TLS, and holds mail back when the policy excludes B's MX."""
    from mailserver.outbound.sts_store import DatabasePolicyCache
    from tests.mailserver.outbound.pki import TestCa
    from tests.mailserver.outbound.policy_server import PolicyServer

    a, b, dns = await two_schools(tmp_path, fresh_database_url)
    ca = TestCa(tmp_path / "ca")
    policies = await PolicyServer(ca.issue(["mta-sts.b.test"], ips=(B_IP,)).server_context(),
                                  host=B_IP).start()
    dns.add("mta-sts.b.test", "A", B_IP)
    dns.add("_mta-sts.b.test", "TXT", "v=STSv1; id=2026a")
    policies.serve("version: STSv1\nmode: enforce\nmx: mail.b.test\nmax_age: 86400\n")
    # A trusts the test CA (policy server) and B's own certificate (its MX).
    bundle = tmp_path / "trust.pem"
    bundle.write_bytes(ca.path.read_bytes() +
                       b.settings.path(b.settings.tls.certificate).read_bytes())
    trust = outbound_wiring.OutboundTrust(ca_file=str(bundle), mta_sts_port=policies.port)
    try:
        await b.start()
        await a.start(trust=trust)
        marker, message = make_message(sender="paul@a.test", to=["anna@b.test"])
        await a.submit("paul", ["anna@b.test"], message)
        [received] = await eventually(lambda: b.inbox("anna"))
        assert received["X-Test-Id"] == marker
        assert received["Return-Path"] == "<paul@a.test>"  # B's own, exactly one
        assert len(received.get_all("Return-Path")) == 1
        cached = await DatabasePolicyCache(a.school.db).get("b.test")
        assert cached is not None and cached.policy_id == "2026a"
        assert cached.policy.mx == ("mail.b.test",)

        # B's policy no longer names its MX: A keeps the mail (temporary failure).
        dns.remove("_mta-sts.b.test")
        dns.add("_mta-sts.b.test", "TXT", "v=STSv1; id=2026b")
        policies.serve("version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\n"
                       "max_age: 86400\n")
        _, held = make_message(sender="paul@a.test", to=["anna@b.test"])
        await a.submit("paul", ["anna@b.test"], held)
        queue = OutboundQueue(a.school.db)

        async def refused() -> bool:
            entries = await queue.entries(("queued",))
            return bool(entries) and (entries[0].last_error or "").startswith("451 4.7.5")

        await eventually(refused)
        assert len(await b.inbox("anna")) == 1
        assert len(policies.requests) == 2
    finally:
        for mail in (a, b):
            await mail.stop()
            await mail.school.close()
        await policies.stop()
        await dns.stop()
