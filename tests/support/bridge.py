"""Shared by the mail <-> room bridge tests (tests/e2e/test_mail_bridge*.py,
test_room_digest.py): the school's Matrix server with its group rooms, mail sent over
submission, what the school's system user posted, the webmail logged in."""

from __future__ import annotations

import email
import email.policy
import imaplib
import re
import smtplib
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage

import aiohttp
import aiosmtplib
from nio import AsyncClient, LoginResponse, RoomMessageNotice, RoomMessageText, SyncResponse

from conf.app import School
from mailserver.smtp import SmtpService
from messenger.server import MatrixServer
from tests.support.smtp_clients import client_tls_context

DOMAIN = "schule.test"
PASSWORD = "ein-sicheres-passwort"
SYSTEM = f"@schulhof:{DOMAIN}"


def tls_context(school: School) -> ssl.SSLContext:
    """Trusts the school's certificate, for 127.0.0.1 (the certificate names
    mail.schule.test): submission, IMAPS."""
    context = client_tls_context(school.settings)
    context.check_hostname = False
    return context


async def submit(school: School, login: str, to: str, message: bytes) -> None:
    """``message`` over submission (STARTTLS, AUTH) with aiosmtplib."""
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=school.settings.listen.submission,
                           start_tls=True, tls_context=tls_context(school), timeout=20)
    async with smtp:
        await smtp.login(login, PASSWORD)
        await smtp.sendmail(f"{login}@{DOMAIN}", [to], message)


def send(school: School, login: str, message: EmailMessage) -> None:
    """``message`` over submission (STARTTLS, AUTH) with smtplib (run it in a thread)."""
    with smtplib.SMTP("127.0.0.1", school.settings.listen.submission, timeout=20) as smtp:
        smtp.starttls(context=tls_context(school))
        smtp.login(login, PASSWORD)
        smtp.send_message(message)


def inbox(school: School, login: str) -> list[EmailMessage]:
    """``login``'s INBOX over IMAPS with imaplib (run it in a thread)."""
    with imaplib.IMAP4_SSL("127.0.0.1", school.settings.listen.imaps,
                           ssl_context=tls_context(school), timeout=20) as imap:
        imap.login(login, PASSWORD)
        imap.select("INBOX", readonly=True)
        _, found = imap.uid("SEARCH", "ALL")
        messages = []
        for uid in found[0].split():
            _, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = data[0][1]
            assert isinstance(raw, bytes)
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            messages.append(parsed)
        return messages


async def group_rooms(school: School) -> MatrixServer:
    """The school's Matrix server, once it has made the rooms of the groups there are."""
    server = next(s for s in school.services if isinstance(s, MatrixServer))
    await server.school_rooms.sync_group_rooms()
    return server


async def nio_client(server: MatrixServer, login: str) -> AsyncClient:
    """A matrix-nio client logged in as ``login`` (the caller closes it)."""
    client = AsyncClient(server.base_url, f"@{login}:{DOMAIN}")
    assert isinstance(await client.login(PASSWORD), LoginResponse)
    return client


async def settled(school: School) -> None:
    """The bridge posts after the 250: wait until it has run."""
    for service in school.services:
        if isinstance(service, SmtpService):
            await service.settled()


def from_system(sync: SyncResponse, room_id: str) -> list[RoomMessageText | RoomMessageNotice]:
    room = sync.rooms.join.get(room_id)
    if room is None:
        return []
    return [e for e in room.timeline.events
            if isinstance(e, RoomMessageText | RoomMessageNotice) and e.sender == SYSTEM]


async def collect(client: AsyncClient, room_id: str, since: str, *, want: int,
                  ) -> list[RoomMessageText | RoomMessageNotice]:
    """The system user's messages in the room: syncs until ``want`` arrived (or 10 s),
    then one more short sync, so that a further (duplicate) post would be seen too."""
    found: list[RoomMessageText | RoomMessageNotice] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        synced = await client.sync(timeout=1000 if len(found) < want else 500, since=since)
        assert isinstance(synced, SyncResponse), synced
        found += from_system(synced, room_id)
        since = synced.next_batch
        if len(found) >= want and not from_system(synced, room_id):
            break
    return found


@asynccontextmanager
async def webmail(school: School, login: str | None = None
                  ) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser session at the school's webmail; logged in as ``login`` if given."""
    (web,) = [s for s in school.services if type(s).__name__ == "WebmailServer"]
    connector = aiohttp.TCPConnector(ssl=client_tls_context(school.settings))
    async with aiohttp.ClientSession(web.base_url, connector=connector,  # type: ignore
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        if login is not None:
            async with browser.get("/login") as response:
                token = re.search(r'name="csrf" value="([^"]+)"', await response.text())
                assert token
            async with browser.post("/login", allow_redirects=False, data={
                    "csrf": token.group(1), "login": login, "password": PASSWORD}) as response:
                assert response.status == 303
        yield browser
