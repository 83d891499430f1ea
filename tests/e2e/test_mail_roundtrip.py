"""Mail over the wire end to end: SMTP submission in, IMAP out, on one running school.

Everything between the two clients is the real server: submission with
STARTTLS and AUTH, the delivery transaction, the store, the change feed and
the IMAP server (IDLE, FETCH BODYSTRUCTURE and body sections).
"""

from __future__ import annotations

import asyncio
import ssl
import time

import aiosmtplib
from imapclient import IMAPClient

from conf.app import School
from directory.model import Role

PASSWORD = "ein-sicheres-passwort"

MESSAGE = (
    "From: Herr Lehrer <lehrer@schule.test>\r\n"
    "To: Anna <anna@schule.test>\r\n"
    "Subject: =?utf-8?q?Hausaufgaben_f=C3=BCr_Montag?=\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="grenze"\r\n'
    "\r\n"
    "--grenze\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Bitte Seite 12 lesen. Grüße!\r\n"
    "--grenze\r\n"
    'Content-Type: application/pdf; name="blatt.pdf"\r\n'
    'Content-Disposition: attachment; filename="blatt.pdf"\r\n'
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "JVBERi0xLjQK\r\n"
    "--grenze--\r\n"
).encode()


def _tls(school: School) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(school.settings.path(school.settings.tls.certificate)))
    context.check_hostname = False  # the test certificate names mail.schule.test
    return context


def _imap(school: School) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=school.settings.listen.imaps, ssl=True,
                        ssl_context=_tls(school), timeout=20)
    client.login("anna", PASSWORD)
    return client


async def _submit(school: School, message: bytes) -> None:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=school.settings.listen.submission,
                           start_tls=True, tls_context=_tls(school), timeout=20)
    async with smtp:
        await smtp.login("lehrer", PASSWORD)
        await smtp.sendmail("lehrer@schule.test", ["anna@schule.test"], message)


async def test_submitted_mail_wakes_idle_and_fetches_with_structure(
        running_school: School) -> None:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="anna", password=PASSWORD)

    idler = await asyncio.to_thread(_imap, running_school)
    await asyncio.to_thread(idler.select_folder, "INBOX")
    await asyncio.to_thread(idler.idle)

    sent_at = time.monotonic()
    await _submit(running_school, MESSAGE)
    accepted = time.monotonic()
    responses = await asyncio.to_thread(idler.idle_check, 5)
    woke = time.monotonic()
    await asyncio.to_thread(idler.idle_done)
    assert (1, b"EXISTS") in responses, responses
    assert woke - accepted < 1.0, f"IDLE woke {woke - accepted:.3f} s after the 250"
    assert accepted - sent_at < 5.0

    fetched = await asyncio.to_thread(
        idler.fetch, [1], ["BODYSTRUCTURE", "ENVELOPE", "BODY.PEEK[1]", "BODY.PEEK[]",
                           "FLAGS", "RFC822.SIZE"])
    item = fetched[next(iter(fetched))]
    structure = item[b"BODYSTRUCTURE"]
    assert structure.is_multipart
    text_part, pdf_part = structure[0]
    assert (text_part[0], text_part[1]) == (b"text", b"plain")
    assert tuple(text_part[2]) == (b"charset", b"utf-8")
    assert (pdf_part[0], pdf_part[1], pdf_part[5]) == (b"application", b"pdf", b"base64")
    assert structure[1] == b"mixed"
    # RFC 2046 5.1.1: the CRLF before a boundary belongs to the boundary.
    assert item[b"BODY[1]"] == "Bitte Seite 12 lesen. Grüße!".encode()
    envelope = item[b"ENVELOPE"]
    assert envelope.subject == b"=?utf-8?q?Hausaufgaben_f=C3=BCr_Montag?="
    assert envelope.from_[0].mailbox == b"lehrer"
    whole = item[b"BODY[]"]
    assert whole.startswith(b"Return-Path: <lehrer@schule.test>\r\nReceived: from ")
    assert b"with ESMTPSA" in whole
    assert whole.endswith(MESSAGE)
    assert item[b"RFC822.SIZE"] == len(whole)
    assert b"\\Seen" not in item[b"FLAGS"]  # PEEK leaves it unread

    # A non-PEEK fetch marks it read; a second session sees the flag.
    await asyncio.to_thread(idler.fetch, [1], ["BODY[TEXT]"])
    other = await asyncio.to_thread(_imap, running_school)
    await asyncio.to_thread(other.select_folder, "INBOX", readonly=True)
    flags = await asyncio.to_thread(other.get_flags, [1])
    assert b"\\Seen" in next(iter(flags.values()))
    for client in (idler, other):
        await asyncio.to_thread(client.logout)
