"""SMTP end to end: real clients (smtplib, aiosmtplib), real TLS, the real mail store."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest

from conf.app import School
from conf.settings import QuotaSettings, Settings, SmtpSettings
from directory.model import GroupKind, MemberRole, Role
from mailserver.smtp import ListenerKind, SmtpService
from mailserver.store import MailboxNotFound
from tests.support.schools import make_settings
from tests.support.smtp_clients import (
    RawClient,
    client_tls_context,
    make_message,
    smtp_client,
    smtp_service,
    stored_counts,
)

OUTSIDE = "someone@outside.example"
PASSWORDS = {"anna": "Anna-Lehrerin-1", "paul": "Paul-Schueler-1", "petra": "Petra-Eltern-1"}
CLASS_SIZE = 30


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path / "school", database_url,
        smtp=SmtpSettings(max_message_size=3 * 1024 * 1024, idle_timeout_seconds=30.0,
                          max_errors=10),
        quota=QuotaSettings(pupil=1))


@dataclasses.dataclass
class World:
    school: School
    service: SmtpService
    ids: dict[str, int]

    @property
    def settings(self) -> Settings:
        return self.school.settings

    def client(self, kind: ListenerKind, **kwargs: object) -> smtplib.SMTP:
        return smtp_client(self.service, kind, self.settings, **kwargs)  # type: ignore[arg-type]

    def addr(self, kind: ListenerKind) -> tuple[str, int]:
        return self.service.addresses[kind]

    async def inbox(self, login: str) -> list[bytes]:
        try:
            stored = await self.school.mail_store.read_mailbox(self.ids[login])
        except MailboxNotFound:  # made on first delivery
            return []
        return [m.body for m in stored]


@pytest.fixture
async def world(school: School) -> AsyncIterator[World]:
    d = school.directory
    ids = {}
    ids["anna"] = (await d.create_account(role=Role.TEACHER, login="anna",
                                          password=PASSWORDS["anna"])).id
    ids["paul"] = (await d.create_account(role=Role.PUPIL, login="paul",
                                          password=PASSWORDS["paul"])).id
    ids["petra"] = (await d.create_account(role=Role.PARENT, login="petra",
                                           password=PASSWORDS["petra"])).id
    await d.add_alias("a.lehrerin", "anna")
    await d.create_group("klasse-5a", kind=GroupKind.CLASS)
    await d.add_member("klasse-5a", "anna", MemberRole.OWNER)
    await d.create_group("klasse-6b", kind=GroupKind.CLASS)
    for n in range(CLASS_SIZE):
        login = f"kind{n:02d}"
        ids[login] = (await d.create_account(role=Role.PUPIL, login=login)).id
        await d.add_member("klasse-6b", login)
    async with smtp_service(school) as service:
        yield World(school, service, ids)


def header(message: bytes, name: str) -> list[str]:
    import email

    return [str(v) for v in email.message_from_bytes(message).get_all(name, [])]


# --- delivery ---------------------------------------------------------------------------------
async def test_one_log_line_per_accepted_mx_message(world: World,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """The SPF/DKIM/DMARC verdict rides on the smtp_accepted line: one line per
    message on the hot path (issue 15), nothing lost from it."""
    caplog.set_level(logging.INFO, logger="schulhof.smtp")
    _, message = make_message(sender=OUTSIDE, to=["anna@schule.test"])

    def send() -> None:
        with world.client(ListenerKind.MX) as client:
            client.sendmail(OUTSIDE, ["anna@schule.test"], message)
            client.sendmail(OUTSIDE, ["anna@schule.test"], message)

    await asyncio.to_thread(send)
    lines = [r.getMessage() for r in caplog.records if r.name == "schulhof.smtp"]
    assert len(lines) == 2, lines
    for line in lines:
        assert line.startswith("event=smtp_accepted ")
        assert " listener=mx " in line
        assert " spf=none dkim=none dmarc=none from_domain=outside.example" in line


async def test_mx_delivery_over_starttls(world: World) -> None:
    marker, message = make_message(sender=OUTSIDE, to=["anna@schule.test"])

    def send() -> dict:
        with world.client(ListenerKind.MX) as client:
            return client.sendmail(OUTSIDE, ["ANNA@Schule.Test"], message)

    assert await asyncio.to_thread(send) == {}
    (stored,) = await world.inbox("anna")
    assert header(stored, "X-Test-Id") == [marker]
    assert header(stored, "Return-Path") == [f"<{OUTSIDE}>"]
    (received,) = header(stored, "Received")
    received = " ".join(received.split())
    assert received.startswith("from client.test ([127.0.0.1]) (using TLSv1.")
    assert "by mail.schule.test (Schulhof) with ESMTPS id" in received
    assert "for <ANNA@schule.test>;" in received  # as the client spelled it
    assert stored.startswith(b"Return-Path:")


async def test_submission_adds_message_id_and_date(world: World,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    marker, message = make_message(sender="anna@schule.test", to=["paul@schule.test"])

    def send() -> None:
        with world.client(ListenerKind.SUBMISSIONS) as client:
            client.login("anna", PASSWORDS["anna"])
            client.sendmail("a.lehrerin@schule.test", ["paul@schule.test"], message)

    await asyncio.to_thread(send)
    (stored,) = await world.inbox("paul")
    assert header(stored, "X-Test-Id") == [marker]
    assert len(header(stored, "Message-ID")) == 1 and len(header(stored, "Date")) == 1
    assert "with ESMTPSA id" in " ".join(header(stored, "Received")[0].split())
    # aiosmtpd logged a warning for every connection on 465 (AUTH without STARTTLS).
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_unknown_recipient(world: World) -> None:
    def send() -> None:
        with world.client(ListenerKind.MX) as client:
            client.sendmail(OUTSIDE, ["niemand@schule.test"], b"Subject: x\r\n\r\nx\r\n")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        await asyncio.to_thread(send)
    code, text = caught.value.recipients["niemand@schule.test"]
    assert code == 550 and text.startswith(b"5.1.1")


# --- relaying ---------------------------------------------------------------------------------
RELAY_TRICKS = [
    "<victim@outside.example>",
    "<VICTIM@OUTSIDE.EXAMPLE>",
    "<victim@outside.example.>",
    "<@schule.test:victim@outside.example>",
    "<@schule.test,@mail.schule.test:victim@outside.example>",
    "<victim%outside.example@schule.test>",
    "<victim%outside.example@schule.test.>",
    "<victim@outside.example@schule.test>",
    '<"victim@outside.example"@schule.test>',
    '<"victim@outside.example">',
    "<victim@[127.0.0.1]>",
    "<anna@[127.0.0.1]>",
    "<outside.example!victim@schule.test>",
    "<outside.example!victim>",
    "victim@outside.example",
    "<victim@outside.example> NOTIFY=NEVER",
    "<victim@xn--outside-.example>",
]


@pytest.mark.parametrize("kind", [ListenerKind.MX, ListenerKind.SUBMISSION])
async def test_relay_tricks_are_all_refused(world: World, kind: ListenerKind) -> None:
    for trick in RELAY_TRICKS:
        # A fresh connection per trick: the error limit would end a shared one.
        client = await RawClient.connect(*world.addr(kind))
        await client.reply()
        await client.command("EHLO client.test")
        # Plain text on purpose: a relay must not work before STARTTLS either.
        mail = await client.command(f"MAIL FROM:<{OUTSIDE}>")
        rcpt = await client.command(f"RCPT TO:{trick}")
        data = await client.command("DATA")
        await client.close()
        assert rcpt.code >= 500, (kind, trick, rcpt.lines)
        if kind is ListenerKind.MX:
            assert mail.code == 250
            assert data.code == 503, (trick, data.lines)
        else:  # RFC 8314: nothing but EHLO/STARTTLS/NOOP/QUIT in the clear on 587
            assert mail.lines[0].startswith("530 5.7.0")
            assert data.lines[0].startswith("530 5.7.0")
    assert await stored_counts(world.school) == {"messages": 0, "blobs": 0, "outbound": 0}


async def test_relay_refused_after_starttls_with_aiosmtplib(world: World) -> None:
    host, port = world.addr(ListenerKind.MX)
    smtp = aiosmtplib.SMTP(hostname=host, port=port, tls_context=client_tls_context(
        world.settings), local_hostname="client.test", start_tls=True)
    await smtp.connect()
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
        await smtp.sendmail(OUTSIDE, ["victim@outside.example"], b"Subject: x\r\n\r\nx\r\n")
    assert caught.value.recipients[0].code == 554
    await smtp.quit()
    assert (await stored_counts(world.school))["outbound"] == 0


# --- authentication ---------------------------------------------------------------------------
async def test_auth_before_starttls_is_refused(world: World) -> None:
    client = await RawClient.connect(*world.addr(ListenerKind.SUBMISSION))
    await client.reply()
    ehlo = await client.command("EHLO client.test")
    assert not any("AUTH" in line for line in ehlo.lines)
    assert any("STARTTLS" in line for line in ehlo.lines)
    token = base64.b64encode(b"\0anna\0" + PASSWORDS["anna"].encode()).decode()
    reply = await client.command(f"AUTH PLAIN {token}")
    assert reply.lines[0].startswith(("530 5.7.0", "538 5.7.11"))
    reply = await client.command(f"MAIL FROM:<{OUTSIDE}>")
    assert reply.lines[0].startswith("530 5.7.0")
    await client.close()


async def test_mail_without_auth_after_starttls(world: World) -> None:
    def send() -> None:
        with world.client(ListenerKind.SUBMISSION) as client:
            assert "auth" in client.esmtp_features
            client.sendmail("anna@schule.test", ["paul@schule.test"], b"Subject: x\r\n\r\nx\r\n")

    with pytest.raises(smtplib.SMTPSenderRefused) as caught:
        await asyncio.to_thread(send)
    assert caught.value.smtp_code == 530


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_wrong_password(world: World, mechanism: str) -> None:
    def login() -> None:
        with world.client(ListenerKind.SUBMISSION) as client:
            client.user, client.password = "anna", "falsch"
            client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))

    with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        await asyncio.to_thread(login)
    assert caught.value.smtp_code == 535
    assert caught.value.smtp_error.startswith(b"5.7.8")


async def test_login_mechanism_works(world: World) -> None:
    def login() -> tuple[int, bytes]:
        with world.client(ListenerKind.SUBMISSION) as client:
            client.user, client.password = "anna@schule.test", PASSWORDS["anna"]
            return client.auth("LOGIN", client.auth_login)

    code, _text = await asyncio.to_thread(login)
    assert code == 235


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_credentials_after_a_challenge(world: World, mechanism: str) -> None:
    """RFC 4954 4: AUTH without an initial response; the server asks with 334."""
    def login() -> tuple[int, bytes]:
        with world.client(ListenerKind.SUBMISSION) as client:
            client.user, client.password = "anna@schule.test", PASSWORDS["anna"]
            return client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"),
                               initial_response_ok=False)

    code, _text = await asyncio.to_thread(login)
    assert code == 235


@pytest.mark.parametrize("answer", ["*", "not base64!"])
async def test_cancelled_or_undecodable_challenge_answer(world: World, answer: str) -> None:
    """RFC 4954 4: "*" cancels the exchange with 501; so does an answer that is not
    base64. The session stays usable and unauthenticated."""
    def exchange() -> list[tuple[int, bytes]]:
        with world.client(ListenerKind.SUBMISSION) as client:
            client.ehlo_or_helo_if_needed()
            replies = [client.docmd("AUTH", "LOGIN"), client.docmd(answer)]
            replies.append(client.docmd("MAIL", "FROM:<anna@schule.test>"))
            return replies

    challenge, refused, mail = await asyncio.to_thread(exchange)
    assert challenge[0] == 334
    assert refused[0] == 501
    assert mail[0] == 530


# --- sender and role policy -------------------------------------------------------------------
async def submit(world: World, login: str, mail_from: str, rcpts: list[str],
                 message: bytes) -> dict:
    def send() -> dict:
        with world.client(ListenerKind.SUBMISSION) as client:
            client.login(login, PASSWORDS[login])
            return client.sendmail(mail_from, rcpts, message)

    return await asyncio.to_thread(send)


async def test_spoofed_mail_from_is_refused(world: World) -> None:
    _m, message = make_message(sender="anna@schule.test", to=["paul@schule.test"])
    with pytest.raises(smtplib.SMTPSenderRefused) as caught:
        await submit(world, "paul", "anna@schule.test", ["paul@schule.test"], message)
    assert caught.value.smtp_code == 550
    assert caught.value.smtp_error.startswith(b"5.7.1 You may not send as <anna@schule.test>")
    assert await world.inbox("paul") == []


async def test_spoofed_from_header_is_refused(world: World) -> None:
    _m, message = make_message(sender="Frau Lehrerin <anna@schule.test>",
                               to=["paul@schule.test"])
    with pytest.raises(smtplib.SMTPDataError) as caught:
        await submit(world, "paul", "paul@schule.test", ["anna@schule.test"], message)
    assert caught.value.smtp_code == 550
    assert b"From header address <anna@schule.test>" in caught.value.smtp_error
    assert await world.inbox("anna") == []


async def test_pupil_may_not_write_outside(world: World) -> None:
    _m, message = make_message(sender="paul@schule.test", to=[OUTSIDE])
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        await submit(world, "paul", "paul@schule.test", [OUTSIDE], message)
    code, text = caught.value.recipients[OUTSIDE]
    assert code == 550 and text.startswith(b"5.7.1 pupils may not write to addresses outside")
    assert (await stored_counts(world.school))["outbound"] == 0


async def test_parent_may_not_write_to_other_pupils(world: World) -> None:
    _m, message = make_message(sender="petra@schule.test", to=["paul@schule.test"])
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        await submit(world, "petra", "petra@schule.test", ["paul@schule.test"], message)
    code, text = caught.value.recipients["paul@schule.test"]
    assert code == 550 and b"parents may only contact" in text


async def test_teacher_writes_outside_goes_to_the_queue(world: World) -> None:
    _m, message = make_message(sender="anna@schule.test", to=[OUTSIDE])
    assert await submit(world, "anna", "anna@schule.test", [OUTSIDE], message) == {}
    assert await stored_counts(world.school) == {"messages": 0, "blobs": 1, "outbound": 1}


async def test_pupil_may_not_post_to_a_class(world: World) -> None:
    _m, message = make_message(sender="paul@schule.test", to=["klasse-6b@schule.test"])
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        await submit(world, "paul", "paul@schule.test", ["klasse-6b@schule.test"], message)
    assert caught.value.recipients["klasse-6b@schule.test"][0] == 550


async def test_outsiders_may_not_post_to_groups(world: World) -> None:
    def send() -> None:
        with world.client(ListenerKind.MX) as client:
            client.sendmail(OUTSIDE, ["klasse-6b@schule.test"], b"Subject: x\r\n\r\nx\r\n")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        await asyncio.to_thread(send)
    code, text = caught.value.recipients["klasse-6b@schule.test"]
    assert code == 550 and text.startswith(b"5.7.1 Group addresses")


async def test_owner_may_send_as_the_group(world: World) -> None:
    _m, message = make_message(sender="klasse-5a@schule.test", to=["paul@schule.test"])
    assert await submit(world, "anna", "klasse-5a@schule.test", ["paul@schule.test"],
                        message) == {}
    with pytest.raises(smtplib.SMTPSenderRefused):
        await submit(world, "paul", "klasse-6b@schule.test", ["paul@schule.test"], message)


async def test_group_expansion_one_blob_thirty_rows(world: World) -> None:
    marker, message = make_message(sender="anna@schule.test",
                                   to=["klasse-6b@schule.test"])
    host, port = world.addr(ListenerKind.SUBMISSIONS)
    smtp = aiosmtplib.SMTP(hostname=host, port=port, use_tls=True,
                           tls_context=client_tls_context(world.settings))
    await smtp.connect()
    await smtp.login("anna", PASSWORDS["anna"])
    # The group and one member directly: still one copy for that member.
    errors, _ = await smtp.sendmail("anna@schule.test",
                                    ["klasse-6b@schule.test", "kind07@schule.test"], message)
    await smtp.quit()
    assert errors == {}
    assert await stored_counts(world.school) == {"messages": CLASS_SIZE, "blobs": 1,
                                                  "outbound": 0}
    for n in (0, 7, CLASS_SIZE - 1):
        (stored,) = await world.inbox(f"kind{n:02d}")
        assert header(stored, "X-Test-Id") == [marker]
        # Several recipients: the Received field names none of them (Bcc privacy).
        assert "for <" not in header(stored, "Received")[0]


# --- limits and bad input ---------------------------------------------------------------------
async def test_size_limit_with_aiosmtplib(world: World) -> None:
    host, port = world.addr(ListenerKind.MX)
    smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=True,
                           tls_context=client_tls_context(world.settings))
    await smtp.connect()
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 3200
    with pytest.raises(aiosmtplib.SMTPResponseException) as caught:
        await smtp.sendmail(OUTSIDE, ["anna@schule.test"], big)
    assert caught.value.code == 552 and caught.value.message.startswith("5.3.4")
    await smtp.quit()
    assert await world.inbox("anna") == []


async def test_quota_refusal(world: World) -> None:
    """Pupils have 1 MiB here: 600 KB fits once; the SIZE= hint refuses the second at RCPT."""
    body = (b"y" * 998 + b"\r\n") * 600

    def send() -> tuple[dict, Exception | None]:
        with world.client(ListenerKind.MX) as client:
            first = client.sendmail(OUTSIDE, ["paul@schule.test"], b"Subject: 1\r\n\r\n" + body)
            try:
                client.sendmail(OUTSIDE, ["paul@schule.test"], b"Subject: 2\r\n\r\n" + body)
            except smtplib.SMTPRecipientsRefused as exc:
                return first, exc
            return first, None

    first, refused = await asyncio.to_thread(send)
    assert first == {}
    assert isinstance(refused, smtplib.SMTPRecipientsRefused)
    code, text = refused.recipients["paul@schule.test"]
    assert (code, text[:5]) == (452, b"4.2.2")

    client = await RawClient.connect(*world.addr(ListenerKind.MX))
    await client.reply()
    await client.command("EHLO client.test")
    await client.command(f"MAIL FROM:<{OUTSIDE}> SIZE=2000000")
    reply = await client.command("RCPT TO:<kind01@schule.test>")
    assert reply.lines[0].startswith("552 5.2.2")
    await client.close()
    assert len(await world.inbox("paul")) == 1


async def fresh_noop(world: World) -> None:
    client = await RawClient.connect(*world.addr(ListenerKind.MX))
    assert (await client.reply()).code == 220
    assert (await client.command("NOOP")).lines[0] == "250 2.0.0 OK"
    await client.close()


async def test_bad_input_on_a_raw_socket(world: World) -> None:
    client = await RawClient.connect(*world.addr(ListenerKind.MX))
    await client.reply()
    await client.command("EHLO client.test")
    # NUL bytes in a command.
    reply = await client.command(b"MAIL FROM:<a\x00b@outside.example>")
    assert reply.lines[0].startswith("553 5.1.3")
    # A 1 MB line: refused, connection still usable.
    reply = await client.command(b"NOOP " + b"z" * 1024 * 1024)
    assert reply.lines[0].startswith("500 5.5.2")
    assert (await client.command("NOOP")).code == 250
    # Bare LF inside DATA (SMTP smuggling shape): refused, nothing stored.
    await client.command(f"MAIL FROM:<{OUTSIDE}>")
    await client.command("RCPT TO:<anna@schule.test>")
    assert (await client.command("DATA")).code == 354
    reply = await client.command(b"Subject: x\r\n\r\nline\n.\nMAIL FROM:<x@y>\r\nmore\r\n.")
    assert reply.lines[0].startswith("550 5.6.0")
    # NUL in the body.
    await client.command(f"MAIL FROM:<{OUTSIDE}>")
    await client.command("RCPT TO:<anna@schule.test>")
    await client.command("DATA")
    assert (await client.command(b"Subject: x\r\n\r\na\x00b\r\n.")).lines[0].startswith("550")
    # A 1 MB line inside DATA.
    await client.command(f"MAIL FROM:<{OUTSIDE}>")
    await client.command("RCPT TO:<anna@schule.test>")
    await client.command("DATA")
    reply = await client.command(b"Subject: x\r\n\r\n" + b"q" * 1024 * 1024 + b"\r\n.")
    assert reply.lines[0].startswith("500 5.5.2")
    # Garbage after DATA's end and as arguments.
    assert (await client.command("DATA junk")).code == 503
    assert (await client.command("\x01\x02garbage")).lines[0].startswith("500 5.5.2")
    await client.close()
    assert await world.inbox("anna") == []
    await fresh_noop(world)


async def test_pipelined_junk(world: World) -> None:
    client = await RawClient.connect(*world.addr(ListenerKind.MX))
    await client.reply()
    await client.command("EHLO client.test")
    batch = (f"MAIL FROM:<{OUTSIDE}>\r\nRCPT TO:<anna@schule.test>\r\nRCPT TO:<x@evil.example>\r\n"
             "HELO\r\nBLAH\r\nRCPT TO:<paul@schule.test>\r\nNOOP\r\n").encode()
    await client.send(batch)
    codes = [(await client.reply()).lines[0][:9] for _ in range(7)]
    assert codes == ["250 2.1.0", "250 2.1.5", "554 5.7.1", "501 5.5.4", "500 5.5.2",
                     "250 2.1.5", "250 2.0.0"]
    # Then many bad lines at once: the error limit ends the connection with 421.
    await client.send(b"BAD\r\n" * 20)
    lines = []
    while True:
        try:
            lines.append((await client.reply()).lines[0])
        except ConnectionError:
            break
    assert lines[-1].startswith("421 4.7.0")
    await client.close()
    await fresh_noop(world)
