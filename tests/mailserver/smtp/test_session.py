"""The SMTP session's decisions and limits over loopback, with a recording delivery target."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest

from conf.app import School
from conf.wiring.smtp import smtp_config
from directory.model import Role, Status
from federation.keys import DkimKey, SchoolKeyPaths, generate_school_keys, load_dkim_keys
from mailserver.delivery import RecipientOutcome
from mailserver.smtp import ListenerKind, SmtpLimits, SmtpService, inbound_auth
from tests.mailserver.smtp.fakes import FakeTarget
from tests.support.smtp_clients import RawClient

OUTSIDE = "sender@outside.example"


@dataclasses.dataclass
class Harness:
    school: School
    service: SmtpService
    target: FakeTarget

    async def raw(self, kind: ListenerKind = ListenerKind.MX) -> RawClient:
        client = await RawClient.connect(*self.service.addresses[kind])
        assert (await client.reply()).code == 220
        return client

    async def mx(self) -> RawClient:
        client = await self.raw()
        assert (await client.command("EHLO client.test")).code == 250
        return client


async def start(school: School, **limits: object) -> Harness:
    config = smtp_config(school.settings)
    config = dataclasses.replace(config, mx_port=0, submission_port=0, submissions_port=-1,
                                 limits=dataclasses.replace(config.limits, **limits))
    target = FakeTarget()
    service = SmtpService(config, school.directory, school.authenticator, target)
    await service.start()
    return Harness(school, service, target)


@pytest.fixture
async def harness(school: School) -> AsyncIterator[Harness]:
    await school.directory.create_account(role=Role.TEACHER, login="anna")
    h = await start(school, max_recipients=3, max_errors=20)
    yield h
    await h.service.stop()


async def test_listener_descriptions_report_real_ports(school: School) -> None:
    config = dataclasses.replace(smtp_config(school.settings), mx_port=0, submission_port=-1,
                                 submissions_port=0)
    service = SmtpService(config, school.directory, school.authenticator, FakeTarget())
    described = await service.start()
    try:
        assert len(described) == 2
        for kind, line in zip((ListenerKind.MX, ListenerKind.SUBMISSIONS), described,
                              strict=True):
            host, port = service.addresses[kind]
            assert port > 0
            assert line == f"service={kind.service_name} addr={host}:{port}"
    finally:
        await service.stop()


async def test_the_mx_reads_the_schools_dkim_keys_when_it_starts(
        school: School, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not on the first message: that read is a startup cost, not a delivery's."""
    paths = SchoolKeyPaths.in_dir(tmp_path)
    generate_school_keys(paths)
    reads: list[SchoolKeyPaths] = []

    def load(key_paths: SchoolKeyPaths) -> tuple[DkimKey, DkimKey]:
        reads.append(key_paths)
        return load_dkim_keys(key_paths)

    monkeypatch.setattr(inbound_auth, "load_dkim_keys", load)
    config = dataclasses.replace(smtp_config(school.settings), mx_port=0, submission_port=-1,
                                 submissions_port=-1)
    check = inbound_auth.MailAuthCheck(school.resolver, config.hostname,
                                       own_domains=config.local_domains, key_paths=paths)
    service = SmtpService(config, school.directory, school.authenticator, FakeTarget(),
                          inbound_check=check)
    await service.start()
    try:
        assert reads == [paths]
    finally:
        await service.stop()


async def test_ehlo_advertises_extensions(harness: Harness) -> None:
    client = await harness.raw()
    reply = await client.command("EHLO client.test")
    keywords = {line[4:].split()[0] for line in reply.lines[1:]}
    assert {"SIZE", "8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES",
            "STARTTLS", "CHUNKING"} <= keywords
    assert "AUTH" not in keywords and "HELP" not in keywords
    assert "BINARYMIME" not in keywords  # BDAT carries 7bit/8bit MIME only
    assert reply.lines[-1].startswith("250 ")
    await client.close()


async def test_delivery_commits_once_with_trace_headers(harness: Harness) -> None:
    host, port = harness.service.addresses[ListenerKind.MX]
    smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False,
                           local_hostname="client.test")
    await smtp.connect()
    errors, _ = await smtp.sendmail(OUTSIDE, ["Anna@SCHULE.test"], b"Subject: x\r\n\r\nhi\r\n")
    await smtp.quit()
    assert errors == {}
    (tx,) = harness.target.committed
    anna = await harness.school.directory.get_account("anna")
    assert tx.local == [anna.id] and tx.envelope.mail_from == OUTSIDE
    assert tx.committed.startswith(b"Return-Path: <sender@outside.example>\r\nReceived: from ")
    assert b"with ESMTP id" in tx.committed and b"Subject: x\r\n\r\nhi\r\n" in tx.committed


async def test_rcpt_refusals(harness: Harness) -> None:
    await harness.school.directory.create_account(role=Role.PUPIL, login="gone")
    await harness.school.directory.set_status("gone", Status.LEAVER)
    await harness.school.directory.create_group("klasse-5a")
    client = await harness.mx()
    assert (await client.command(f"MAIL FROM:<{OUTSIDE}>")).code == 250
    cases = {
        "<nobody@schule.test>": "550 5.1.1",
        "<gone@schule.test>": "550 5.2.1",
        "<x@elsewhere.example>": "554 5.7.1",
        "<klasse-5a@schule.test>": "550 5.7.1",
        "<anna@[127.0.0.1]>": "550 5.7.1",
        "<anna%x@schule.test>": "550 5.1.1",
        "<>": "501 5.1.3",
        "<a@b@schule.test>": "553 5.1.3",
    }
    for address, expected in cases.items():
        reply = await client.command(f"RCPT TO:{address}")
        assert reply.lines[0].startswith(expected), (address, reply.lines)
    await client.close()


async def test_local_sender_refused_on_mx(harness: Harness) -> None:
    client = await harness.mx()
    reply = await client.command("MAIL FROM:<anna@schule.test>")
    assert reply.lines[0].startswith("550 5.7.1")
    assert (await client.command("MAIL FROM:<>")).code == 250  # bounces are welcome
    await client.close()


async def test_too_many_recipients_keeps_the_transaction(harness: Harness) -> None:
    client = await harness.mx()
    await client.command(f"MAIL FROM:<{OUTSIDE}>")
    codes = [(await client.command("RCPT TO:<anna@schule.test>")).lines[0][:9]
             for _ in range(4)]
    assert codes == ["250 2.1.5"] * 3 + ["452 4.5.3"]
    assert (await client.command("DATA")).code == 354
    assert (await client.command(b"Subject: x\r\n\r\nbody\r\n.")).code == 250
    assert len(harness.target.committed) == 1
    await client.close()


@pytest.mark.parametrize(("outcome", "expected"), [
    (RecipientOutcome.OVER_QUOTA_TEMPORARY, "452 4.2.2"),
    (RecipientOutcome.OVER_QUOTA_PERMANENT, "552 5.2.2"),
])
async def test_quota_outcomes_at_rcpt_use_the_size_hint(harness: Harness,
                                                       outcome: RecipientOutcome,
                                                       expected: str) -> None:
    anna = await harness.school.directory.get_account("anna")
    harness.target.outcomes[anna.id] = outcome
    client = await harness.mx()
    await client.command(f"MAIL FROM:<{OUTSIDE}> SIZE=12345")
    reply = await client.command("RCPT TO:<anna@schule.test>")
    assert reply.lines[0].startswith(expected)
    assert harness.target.transactions[-1].size_hints == [12345]
    await client.close()


async def test_size_limit_advertised_and_enforced(school: School) -> None:
    await school.directory.create_account(role=Role.TEACHER, login="anna")
    h = await start(school, max_message_size=2000)
    try:
        client = await h.mx()
        assert (await client.command(f"MAIL FROM:<{OUTSIDE}> SIZE=5000")).lines[0].startswith(
            "552 5.3.4")
        assert (await client.command(f"MAIL FROM:<{OUTSIDE}>")).code == 250
        assert (await client.command("RCPT TO:<anna@schule.test>")).code == 250
        assert (await client.command("DATA")).code == 354
        await client.send(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 0)
        for _ in range(40):
            await client.send(b"y" * 78 + b"\r\n")
        reply = await client.command(".")
        assert reply.lines[0].startswith("552 5.3.4")
        assert (await client.command("NOOP")).code == 250  # the connection stays usable
        assert h.target.committed == []
        assert all(tx.aborted for tx in h.target.transactions)
        await client.close()
    finally:
        await h.service.stop()


async def test_disconnect_mid_data_aborts(harness: Harness) -> None:
    client = await harness.mx()
    await client.command(f"MAIL FROM:<{OUTSIDE}>")
    await client.command("RCPT TO:<anna@schule.test>")
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: half\r\n\r\nonly half of it")
    await client.close()
    for _ in range(100):
        if harness.target.transactions[-1].aborted:
            break
        await asyncio.sleep(0.02)
    assert harness.target.transactions[-1].aborted
    assert harness.target.committed == []


async def test_rset_aborts_and_order_errors(harness: Harness) -> None:
    client = await harness.mx()
    assert (await client.command("RCPT TO:<anna@schule.test>")).lines[0].startswith("503 5.5.1")
    assert (await client.command("DATA")).lines[0].startswith("503 5.5.1")
    await client.command(f"MAIL FROM:<{OUTSIDE}>")
    assert (await client.command(f"MAIL FROM:<{OUTSIDE}>")).lines[0].startswith("503 5.5.1")
    assert (await client.command("RSET")).lines[0] == "250 2.0.0 OK"
    assert harness.target.transactions[-1].aborted
    await client.close()


async def test_unknown_commands_count_to_the_error_limit(school: School) -> None:
    h = await start(school, max_errors=5)
    client = await h.mx()
    for _ in range(4):
        reply = await client.command("FROBNICATE now")
        assert reply.lines[0].startswith("500 5.5.2")
    assert (await client.command("NOOP")).lines[0] == "250 2.0.0 OK"
    reply = await client.command("XYZZY")
    assert reply.lines[0].startswith("500 5.5.2")
    assert (await client.reply()).lines[0].startswith("421 4.7.0")
    assert await client.closed()
    await client.close()
    await h.service.stop()


async def test_long_command_line(harness: Harness) -> None:
    client = await harness.mx()
    reply = await client.command(b"NOOP " + b"a" * 5000)
    assert reply.lines[0].startswith("500 5.5.2")
    assert (await client.command("NOOP")).code == 250
    await client.close()


async def test_connections_per_ip(school: School) -> None:
    h = await start(school, max_connections_per_ip=2)
    try:
        first, second = await h.raw(), await h.raw()
        third = await RawClient.connect(*h.service.addresses[ListenerKind.MX])
        assert (await third.reply()).lines[0].startswith("421 4.7.0")
        assert await third.closed()
        await first.close()
        for _ in range(50):
            if h.service.open_connections < 2:
                break
            await asyncio.sleep(0.02)
        fourth = await h.raw()  # a slot is free again
        await fourth.close()
        await second.close()
    finally:
        await h.service.stop()


async def test_idle_timeout(school: School) -> None:
    h = await start(school, idle_timeout_seconds=0.3)
    try:
        client = await h.raw()
        reply = await client.reply(timeout=5)
        assert reply.lines[0].startswith("421 4.4.2")
        assert await client.closed()
    finally:
        await h.service.stop()


async def test_stop_waits_for_a_commit_then_closes(harness: Harness) -> None:
    harness.target.commit_delay = 0.5
    client = await harness.mx()
    await client.command(f"MAIL FROM:<{OUTSIDE}>")
    await client.command("RCPT TO:<anna@schule.test>")
    await client.command("DATA")
    await client.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
    await asyncio.sleep(0.1)  # the commit is running now
    idle = await harness.raw()
    await harness.service.stop()
    assert (await client.reply()).lines[0].startswith("250 2.0.0")
    assert len(harness.target.committed) == 1
    assert (await idle.reply()).lines[0].startswith("421 4.3.2")
    await client.close()
    await idle.close()


def test_limits_default_matches_settings() -> None:
    from conf.settings import SmtpSettings

    settings, limits = SmtpSettings(), SmtpLimits()
    assert limits.max_message_size == settings.max_message_size
    assert limits.max_recipients == settings.max_recipients
