"""Shared helpers for IMAP session and end-to-end tests: a school with the
IMAP service on loopback, test accounts, delivery through the store, and a
small asyncio IMAP client that keeps every untagged line (the
sequence-number tests need to see each EXISTS / EXPUNGE / FETCH)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from conf.app import School
from conf.settings import ImapSettings, Settings
from directory.model import Role
from mailserver.delivery import Envelope, LocalRecipient
from tests.support.schools import make_settings

PASSWORD = "Geheim-Passwort-123"


def imap_settings(base: Path, database_url: str, **imap: object) -> Settings:
    """Settings with IMAP on port 0 (the real ports come from ``imap_ports``,
    no pick-then-bind race) and the other listeners off (-1)."""
    values = {"idle_timeout_seconds": 60.0, "max_errors": 20, **imap}
    settings = make_settings(base, database_url, imap=ImapSettings(**values))  # type: ignore
    listen = dataclasses.replace(settings.listen, imap=0, imaps=0, smtp=-1, submission=-1,
                                 submissions=-1, matrix=-1, web=-1)
    return dataclasses.replace(settings, listen=listen)


@contextlib.asynccontextmanager
async def imap_school(settings: Settings) -> AsyncIterator[School]:
    school = await School.open(settings, migrate=False)
    try:
        await school.start()
        yield school
    finally:
        await school.close()


def imap_ports(school: School) -> tuple[int, int]:
    """The real (imap, imaps) ports of the running IMAP service."""
    from mailserver.imap.server import ImapServer

    server = next(s for s in school.services if isinstance(s, ImapServer))
    return server.bound["imap"], server.bound["imaps"]


async def make_account(school: School, login: str = "anna.schmidt",
                       role: Role = Role.TEACHER) -> int:
    account = await school.directory.create_account(role=role, login=login, password=PASSWORD)
    await school.mail_store.ensure_default_mailboxes(account.id)
    return account.id


def sample_message(subject: str = "Hallo", body: str = "Guten Tag!\r\n",
                   sender: str = "lehrer@schule.test", to: str = "anna.schmidt@schule.test"
                   ) -> bytes:
    return (f"From: Lehrer <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 1 Jan 2024 10:00:00 +0100\r\nMessage-ID: <{subject}@schule.test>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}").encode()


async def deliver(school: School, account_id: int, message: bytes,
                  mailbox: str = "INBOX") -> None:
    """Deliver through the store's delivery transaction (the SMTP path)."""
    transaction = school.mail_store.begin(Envelope("lehrer@schule.test",
                                                   dt.datetime.now(dt.UTC)))
    await transaction.add_local(LocalRecipient(account_id, mailbox), len(message))
    await transaction.commit(message)


def client_tls(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.path(settings.tls.certificate)))
    context.check_hostname = False  # the test certificate names the school, we dial 127.0.0.1
    return context


_TAGGED = re.compile(rb"^(\S+) (OK|NO|BAD) ?(.*)$")


@dataclasses.dataclass
class Reply:
    status: str
    text: str
    untagged: list[bytes]


class RawClient:
    """A minimal IMAP client on asyncio streams; literals are read whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.counter = 0
        self.greeting = b""

    @classmethod
    async def connect(cls, port: int, *, tls: ssl.SSLContext | None = None) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls,
                                                       limit=64 * 1024 * 1024)
        client = cls(reader, writer)
        client.greeting = await client.read_line()
        return client

    async def read_line(self) -> bytes:
        """One response line with any literals it carries spliced in."""
        line = await asyncio.wait_for(self.reader.readline(), 20)
        if not line:
            raise ConnectionError("server closed the connection")
        out = line
        while True:
            found = re.search(rb"\{(\d+)\}\r\n$", out)
            if not found:
                return out.rstrip(b"\r\n")
            out += await self.reader.readexactly(int(found.group(1)))
            out += await asyncio.wait_for(self.reader.readline(), 20)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, text: str | bytes, *, literal: bytes | None = None) -> Reply:
        self.counter += 1
        tag = f"t{self.counter}".encode()
        raw = text.encode() if isinstance(text, str) else text
        if literal is not None:
            await self.send_raw(tag + b" " + raw + b" {%d}\r\n" % len(literal))
            untagged = []
            while True:
                line = await self.read_line()
                if line.startswith(b"+"):
                    break
                if line.startswith(tag + b" "):
                    match = _TAGGED.match(line)
                    assert match
                    return Reply(match.group(2).decode(), match.group(3).decode(), untagged)
                untagged.append(line)
            await self.send_raw(literal + b"\r\n")
        else:
            await self.send_raw(tag + b" " + raw + b"\r\n")
        return await self.finish(tag)

    async def finish(self, tag: bytes) -> Reply:
        untagged: list[bytes] = []
        while True:
            line = await self.read_line()
            if line.startswith(tag + b" "):
                match = _TAGGED.match(line)
                assert match, line
                return Reply(match.group(2).decode(), match.group(3).decode(), untagged)
            untagged.append(line)

    async def login(self, user: str = "anna.schmidt", password: str = PASSWORD) -> Reply:
        return await self.command(f'LOGIN "{user}" "{password}"')

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
