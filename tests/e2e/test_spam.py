"""Spam filtering through a real rspamd (Debian's) on the MX: GTUBE refused
before the 250, a suspicious message filed into Junk with X-Spam headers, a
clean one delivered with its status; rspamd unreachable: fail-open."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import email.utils
import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from email.message import EmailMessage
from pathlib import Path

import pytest
from imapclient import IMAPClient

from conf.app import School
from conf.settings import Settings, SpamSettings
from directory.model import Role
from tests.support import clamd as clamd_support
from tests.support import rspamd as rspamd_support
from tests.support.clamd import EICAR, SIGNATURE_NAME, running_clamd
from tests.support.rspamd import (
    GREY_SUBJECT,
    GREYLIST_SECONDS,
    JUNK_SUBJECT,
    Rspamd,
    running_rspamd,
)

pytestmark = pytest.mark.skipif(not rspamd_support.available(),
                                reason="needs Debian's rspamd and redis-server")

PASSWORD = "ein-sicheres-passwort"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rspamd]:
    """rspamd, asking a real clamd about attachments where Debian's clamav-daemon
    is installed (`make peers` installs it as root, so CI always has it)."""
    with ExitStack() as stack:
        clamd = (stack.enter_context(running_clamd(tmp_path_factory.mktemp("clamd")))
                 if clamd_support.available() else None)
        yield stack.enter_context(running_rspamd(
            tmp_path_factory.mktemp("rspamd"),
            clamd=(clamd.host, clamd.port) if clamd else None))


@pytest.fixture
def settings(settings: Settings, rspamd: Rspamd) -> Settings:
    return dataclasses.replace(settings, spam=SpamSettings(
        rspamd_url=rspamd.scan_url, rspamd_controller_url=rspamd.controller_url))


def _message(subject: str, body: str) -> bytes:
    return (f"From: Eva <eva@eltern.example>\r\nTo: anna@schule.test\r\n"
            f"Subject: {subject}\r\nDate: Mon, 07 Dec 2026 08:00:00 +0000\r\n"
            f"Message-ID: <{abs(hash(subject))}@eltern.example>\r\n\r\n{body}\r\n").encode()


def _send_mx(school: School, message: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", school.settings.listen.smtp, timeout=30) as smtp:
        smtp.ehlo("mail.eltern.example")
        smtp.sendmail("eva@eltern.example", ["anna@schule.test"], message)


def _headers(school: School, folder: str) -> list[email.message.Message]:
    context = ssl.create_default_context(
        cafile=str(school.settings.path(school.settings.tls.certificate)))
    context.check_hostname = False
    with IMAPClient("127.0.0.1", port=school.settings.listen.imaps, ssl=True,
                    ssl_context=context, timeout=20) as client:
        client.login("anna", PASSWORD)
        client.select_folder(folder, readonly=True)
        found = client.fetch(client.search("ALL"), ["BODY.PEEK[HEADER]"])
        return [email.message_from_bytes(data[b"BODY[HEADER]"])
                for _uid, data in sorted(found.items())]


async def test_gtube_refused_junk_filed_clean_delivered(running_school: School) -> None:
    await running_school.directory.create_account(role=Role.PUPIL, login="anna",
                                                  password=PASSWORD)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(_send_mx, running_school,
                                _message("Angebot", f"Hallo\r\n{GTUBE}"))
    assert refused.value.smtp_code == 550
    assert b"5.7.1" in refused.value.smtp_error and b"Gtube" in refused.value.smtp_error

    await asyncio.to_thread(_send_mx, running_school,
                            _message(f"Gewinn {JUNK_SUBJECT}", "Sie haben gewonnen."))
    await asyncio.to_thread(_send_mx, running_school,
                            _message("Elternabend", "Der Elternabend ist am Dienstag."))
    [junk] = await asyncio.to_thread(_headers, running_school, "Junk")
    assert junk["X-Spam"] == "Yes" and junk["X-Spam-Status"].startswith("Yes, score=")
    assert "SCHULHOF_JUNK_TEST" in junk["X-Spam-Symbols"]
    [clean] = await asyncio.to_thread(_headers, running_school, "INBOX")
    assert clean["Subject"] == "Elternabend"
    assert clean["X-Spam-Status"].startswith("No, score=")


def _with_attachment(subject: str, filename: str, content: bytes) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "Eva <eva@eltern.example>", "anna@schule.test"
    message["Subject"], message["Message-ID"] = subject, email.utils.make_msgid()
    message["Date"] = "Mon, 07 Dec 2026 08:00:00 +0000"
    message.set_content("Im Anhang die Datei.")
    message.add_attachment(content, maintype="application", subtype="octet-stream",
                           filename=filename)
    return message.as_bytes(policy=email.policy.SMTP)


@pytest.mark.skipif(not clamd_support.available(),
                    reason="needs Debian's clamav-daemon (make peers)")
async def test_virus_refused_through_rspamd_and_clamd(running_school: School) -> None:
    """The EICAR test file as an attachment: rspamd's antivirus module asks clamd,
    which finds it; the MX refuses before the 250 naming the signature. The same
    mail with a harmless attachment is delivered."""
    await running_school.directory.create_account(role=Role.PUPIL, login="anna",
                                                  password=PASSWORD)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(_send_mx, running_school,
                                _with_attachment("Rechnung", "rechnung.com", EICAR))
    assert refused.value.smtp_code == 550
    assert b"5.7.1" in refused.value.smtp_error
    assert SIGNATURE_NAME.encode() in refused.value.smtp_error

    await asyncio.to_thread(_send_mx, running_school,
                            _with_attachment("Stundenplan", "plan.txt", b"Mo: Mathe\n"))
    [delivered] = await asyncio.to_thread(_headers, running_school, "INBOX")
    assert delivered["Subject"] == "Stundenplan"
    assert "CLAM_VIRUS" not in (delivered["X-Spam-Symbols"] or "")


@pytest.fixture(scope="module")
def greylisting_rspamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rspamd]:
    with running_rspamd(tmp_path_factory.mktemp("rspamd-grey"),
                        greylist_loopback=True) as server:
        yield server


async def test_greylisted_by_rspamd_then_accepted_on_retry(
        settings: Settings, greylisting_rspamd: Rspamd) -> None:
    """rspamd's greylist module (redis) says "soft reject" for a new sender, recipient
    and message: smtplib gets 451 4.7.1 with rspamd's text, nothing is delivered; the
    same mail retried after the greylist time is accepted into the INBOX, as a
    sending server's queue would retry it."""
    running_school = await School.open(dataclasses.replace(settings, spam=SpamSettings(
        rspamd_url=greylisting_rspamd.scan_url)), migrate=False)
    await running_school.start()
    try:
        await _greylisted_then_accepted(running_school)
    finally:
        await running_school.close()


async def _greylisted_then_accepted(running_school: School) -> None:
    await running_school.directory.create_account(role=Role.PUPIL, login="anna",
                                                  password=PASSWORD)
    message = (f"From: Eva <eva@eltern.example>\r\nTo: anna@schule.test\r\n"
               f"Subject: Elternbrief {GREY_SUBJECT}\r\nDate: {email.utils.formatdate()}\r\n"
               f"Message-ID: <grau.1@eltern.example>\r\n\r\nBitte unterschreiben.\r\n"
               ).encode()
    with pytest.raises(smtplib.SMTPDataError) as later:
        await asyncio.to_thread(_send_mx, running_school, message)
    assert later.value.smtp_code == 451, later.value
    assert later.value.smtp_error.startswith(b"4.7.1") and b"Try again later" in \
        later.value.smtp_error
    assert await asyncio.to_thread(_headers, running_school, "INBOX") == []
    await asyncio.sleep(GREYLIST_SECONDS + 1)
    await asyncio.to_thread(_send_mx, running_school, message)
    [delivered] = await asyncio.to_thread(_headers, running_school, "INBOX")
    assert delivered["Subject"] == f"Elternbrief {GREY_SUBJECT}"
    assert delivered["X-Spam-Status"].startswith("No, score=")


async def test_unreachable_rspamd_fails_open_with_a_header(
        settings: Settings, tmp_path: Path) -> None:
    from tests.support.schools import free_port

    dead = dataclasses.replace(settings, spam=SpamSettings(
        rspamd_url=f"http://127.0.0.1:{free_port('127.0.0.1')}", timeout_seconds=3))
    school = await School.open(dead, migrate=False)
    await school.start()
    try:
        await school.directory.create_account(role=Role.PUPIL, login="anna",
                                              password=PASSWORD)
        await asyncio.to_thread(_send_mx, school, _message("Hallo", "Text"))
        [delivered] = await asyncio.to_thread(_headers, school, "INBOX")
        assert delivered["X-Spam-Status"] == "Unknown (scan failed)"
    finally:
        await school.close()


def _stat(rspamd: Rspamd) -> dict[str, int]:
    """What rspamd's Bayes classifier learned, from its redis (hash ``RS``)."""
    counts = {}
    for kind in ("spam", "ham"):
        out = subprocess.run(["redis-cli", "-p", str(rspamd.redis_port), "hget", "RS",
                              f"learns_{kind}"], capture_output=True, text=True, check=True)
        counts[kind] = int(out.stdout.strip() or 0)
    return counts


def _move(school: School, source: str, target: str) -> None:
    context = ssl.create_default_context(
        cafile=str(school.settings.path(school.settings.tls.certificate)))
    context.check_hostname = False
    with IMAPClient("127.0.0.1", port=school.settings.listen.imaps, ssl=True,
                    ssl_context=context, timeout=20) as client:
        client.login("anna", PASSWORD)
        client.select_folder(source)
        client.move(client.search("ALL"), target)


async def test_junk_moves_over_imap_train_rspamd(running_school: School,
                                                 rspamd: Rspamd) -> None:
    await running_school.directory.create_account(role=Role.PUPIL, login="anna",
                                                  password=PASSWORD)
    body = ("Sehr geehrte Kundin, Ihr Konto wurde ausgewählt. Klicken Sie jetzt hier, "
            "bestätigen Sie Ihre Daten und erhalten Sie sofort einen Gutschein über "
            "fünfhundert Euro für unseren exklusiven Online-Shop mit vielen Angeboten.")
    await asyncio.to_thread(_send_mx, running_school, _message("Gutschein", body))
    before = await asyncio.to_thread(_stat, rspamd)
    await asyncio.to_thread(_move, running_school, "INBOX", "Junk")

    async def grows(symbol: str, than: dict[str, int]) -> dict[str, int]:
        for _ in range(100):
            now = await asyncio.to_thread(_stat, rspamd)
            if now.get(symbol, 0) > than.get(symbol, 0):
                return now
            await asyncio.sleep(0.2)
        raise AssertionError(f"{symbol} was not learned: {now}")

    after_spam = await grows("spam", before)
    await asyncio.to_thread(_move, running_school, "Junk", "INBOX")
    await grows("ham", after_spam)
