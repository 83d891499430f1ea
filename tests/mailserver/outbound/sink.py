"""A receiving SMTP server for outbound tests (aiosmtpd): records messages, counts connections.

Replies can be chosen per recipient (``rcpt_replies``) and for DATA
(``data_reply``); STARTTLS is offered when a TLS context is given.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from federation.keys import make_self_signed_certificate


@dataclass
class Received:
    mail_from: str
    recipients: list[str]
    data: bytes
    tls: bool


@dataclass
class SinkHandler:
    messages: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    data_delay: float = 0.0
    rcpt_delay: float = 0.0
    # Cleared: every RCPT and DATA waits (no further 250 is given until it is set again).
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    # False: the gate holds RCPT only.  A DATA held at the gate would be recorded
    # after its client died (the 250 never reached it): a legitimate duplicate.
    gate_data: bool = True
    # Offer PIPELINING (RFC 2920) in the EHLO reply (aiosmtpd reads pipelined
    # commands in order either way; without the keyword clients send one by one).
    pipelining: bool = False

    def __post_init__(self) -> None:
        self.gate.set()

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.rcpt_delay:
            await asyncio.sleep(self.rcpt_delay)
        # After the delay: once the gate is cleared, no RCPT is accepted any more.
        await self.gate.wait()
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.gate_data:
            await self.gate.wait()
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_reply is not None:
            return self.data_reply
        if server.transport is None or server.transport.is_closing():
            # The client is gone while we held the reply: it never got a 250 and
            # will send again, so this copy does not count as delivered.
            return "421 4.4.2 connection lost"
        content = envelope.original_content or b""
        sender = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        self.messages.append(Received(sender, list(envelope.rcpt_tos),
                                      content, session.ssl is not None))
        return "250 2.0.0 queued"


def server_tls(tmp: Path, hostname: str, ip: str = "127.0.0.1") -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate; returns (context, cert file)."""
    cert, key = tmp / f"{hostname}.crt", tmp / f"{hostname}.key"
    make_self_signed_certificate(cert, key, [hostname], ip_addresses=[ip])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


class Sink:
    def __init__(self, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None,
                 hostname: str = "mx.sink.test", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.hostname = hostname
        self.tls = tls
        self.handler = SinkHandler()
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def _protocol(self) -> SMTP:
        self.connections += 1
        options: dict[str, Any] = {"tls_context": self.tls} if self.tls else {}
        return SMTP(self.handler, hostname=self.hostname, enable_SMTPUTF8=True,
                    decode_data=False, **options)

    async def start(self) -> Sink:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port,
                                                reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
