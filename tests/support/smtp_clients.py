"""Helpers for SMTP tests: TLS that trusts the test school, real clients, a raw line client."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
import uuid
from collections.abc import Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conf.wiring import smtp as smtp_wiring
from mailserver.smtp import ListenerKind, SmtpService

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from conf.app import School
    from conf.settings import Settings


def client_tls_context(settings: Settings) -> ssl.SSLContext:
    """A client context that trusts exactly the test school's self-signed certificate."""
    context = ssl.create_default_context(cafile=str(settings.path(settings.tls.certificate)))
    context.check_hostname = True
    return context


@asynccontextmanager
async def smtp_service(school: School) -> AsyncIterator[SmtpService]:
    """Only the school's SMTP listeners (other services may not exist yet)."""
    services = smtp_wiring.build(school)
    assert len(services) == 1
    service = services[0]
    assert isinstance(service, SmtpService)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def make_message(*, sender: str, to: Iterable[str], subject: str = "Test",
                 body: str = "Hallo!\r\n", marker: str | None = None,
                 extra_headers: str = "") -> tuple[str, bytes]:
    """A small RFC 5322 message with a unique X-Test-Id header; returns (id, bytes)."""
    marker = marker or uuid.uuid4().hex
    text = (f"From: {sender}\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n"
            f"X-Test-Id: {marker}\r\n{extra_headers}\r\n{body}")
    return marker, text.encode("utf-8")


def smtp_client(service: SmtpService, kind: ListenerKind, settings: Settings, *,
                starttls: bool = True, timeout: float = 10.0) -> smtplib.SMTP:
    """A connected smtplib client: implicit TLS on submissions, STARTTLS elsewhere."""
    host, port = service.addresses[kind]
    context = client_tls_context(settings)
    if kind is ListenerKind.SUBMISSIONS:
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, local_hostname="client.test",
                                                context=context, timeout=timeout)
        client.ehlo()
        return client
    client = smtplib.SMTP(host, port, local_hostname="client.test", timeout=timeout)
    client.ehlo()
    if starttls:
        client.starttls(context=context)
        client.ehlo()
    return client


@dataclass
class RawReply:
    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class RawClient:
    """A line-level SMTP client on a plain socket, for bad input (asyncio streams)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port, limit=2**20)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, timeout: float = 10.0) -> RawReply:
        lines: list[str] = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                raise ConnectionError(f"connection closed after {lines!r}")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return RawReply(int(text[:3]), lines)

    async def command(self, line: bytes | str, timeout: float = 10.0) -> RawReply:
        data = line.encode() if isinstance(line, str) else line
        await self.send(data + b"\r\n")
        return await self.reply(timeout)

    async def closed(self, timeout: float = 10.0) -> bool:
        """True when the server has closed the connection (EOF, maybe after more replies)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except (ConnectionError, OSError):
            pass
        return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError, ssl.SSLError):
            pass


def port_is_closed(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) != 0


async def stored_counts(school: School) -> dict[str, int]:
    """Rows in the mail store's tables: messages, blobs, outbound queue."""
    from sqlalchemy import func, select

    from mailserver.schema import MessageBlobRow, MessageRow, OutboundRow

    async with school.db.read() as session:
        return {name: int(await session.scalar(select(func.count()).select_from(row)) or 0)
                for name, row in (("messages", MessageRow), ("blobs", MessageBlobRow),
                                  ("outbound", OutboundRow))}
