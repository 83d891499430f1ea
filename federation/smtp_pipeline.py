"""SMTP transactions with PIPELINING (RFC 2920) on a connection that is already set up.

:mod:`federation.smtp_out` opens the session with aiosmtplib (connect,
EHLO, STARTTLS with its verification and fallback rules, EHLO again).  When
the server offers PIPELINING, the connection's transport is then handed to
a :class:`PipelinedSession`: MAIL, every RCPT and DATA go out in one write
and their replies are read together, then the message; two round trips per
message instead of 3 + recipients, and one when the next message's MAIL, RCPT
and DATA follow the message in the same write (RFC 2920 3.1).  aiosmtplib
cannot do this: it reads one reply per command written and drops replies
that arrive before it asks.

:class:`ReplyParser` turns the bytes from the server into replies
(RFC 5321 4.2: ``250-first line`` ... ``250 last line``), whatever the
segments they arrive in.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from dataclasses import dataclass

MAX_REPLY_LINE = 2048  # RFC 5321 4.5.3.1.5 says 512; some servers are longer
MAX_REPLY_LINES = 100


class ReplyError(Exception):
    """The server sent something that is not an SMTP reply."""


@dataclass(frozen=True)
class ParsedReply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class ReplyParser:
    """Bytes in, complete replies out (multi-line replies joined)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._code: int | None = None

    def feed(self, data: bytes) -> list[ParsedReply]:
        self._buffer.extend(data)
        replies: list[ParsedReply] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_REPLY_LINE:
                    raise ReplyError("reply line too long")
                return replies
            raw = bytes(self._buffer[:end + 1])
            del self._buffer[:end + 1]
            line = raw.rstrip(b"\r\n")
            if len(line) > MAX_REPLY_LINE:
                raise ReplyError("reply line too long")
            if len(line) < 3 or not line[:3].isdigit() or line[:1] not in b"2345" or (
                    len(line) > 3 and line[3:4] not in b" -"):
                raise ReplyError(f"not an SMTP reply: {line[:40]!r}")
            code = int(line[:3])
            if self._code is not None and code != self._code:
                raise ReplyError("reply code changed inside a multi-line reply")
            self._code = code
            self._lines.append(line[4:].decode("utf-8", "replace"))
            if len(self._lines) > MAX_REPLY_LINES:
                raise ReplyError("too many reply lines")
            if line[3:4] != b"-":  # the last line ("250 text" or just "250")
                replies.append(ParsedReply(code, tuple(self._lines)))
                self._lines, self._code = [], None


def dot_stuffed(message: bytes) -> bytes:
    """The DATA payload (RFC 5321 4.5.2): CRLF line ends, a dot doubled at a line
    start, ending in CRLF . CRLF."""
    crlf = message.count(b"\r\n")
    if message.count(b"\n") != crlf or message.count(b"\r") != crlf:  # a bare CR or LF
        lines = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        message = b"\r\n".join(lines)
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class SessionLost(Exception):
    """The connection ended (or the server talked nonsense) in the middle."""


class PipelinedSession(asyncio.Protocol):
    """The client side of an established SMTP session; replies answered in order."""

    def __init__(self, transport: asyncio.Transport, timeout: float) -> None:
        self._transport = transport
        self._timeout = timeout
        self._parser = ReplyParser()
        self._waiting: collections.deque[asyncio.Future[ParsedReply]] = collections.deque()
        self._early: collections.deque[ParsedReply] = collections.deque()
        self._lost: str | None = None
        transport.set_protocol(self)

    @property
    def connected(self) -> bool:
        return self._lost is None and not self._transport.is_closing()

    # --- asyncio.Protocol ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        try:
            replies = self._parser.feed(data)
        except ReplyError as exc:
            self._fail(str(exc))
            self._transport.abort()
            return
        for reply in replies:
            if self._waiting:
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(reply)
            else:
                self._early.append(reply)  # e.g. 421 before we asked: the next read has it

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(str(exc) if exc else "connection closed by the server")

    def eof_received(self) -> bool | None:
        self._fail("connection closed by the server")
        return None

    def _fail(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(SessionLost(reason))

    # --- commands --------------------------------------------------------------------------
    def _expect(self) -> asyncio.Future[ParsedReply]:
        future: asyncio.Future[ParsedReply] = asyncio.get_running_loop().create_future()
        if self._early:
            future.set_result(self._early.popleft())
        elif self._lost is not None:
            future.set_exception(SessionLost(self._lost))
        else:
            self._waiting.append(future)
        return future

    async def _read(self, futures: Sequence[asyncio.Future[ParsedReply]],
                    timeout: float) -> list[ParsedReply]:
        try:
            async with asyncio.timeout(timeout):
                return [await f for f in futures]
        except TimeoutError:
            self._fail("timed out waiting for the server")
            self._transport.abort()
            raise SessionLost("timed out waiting for the server") from None

    def _write(self, data: bytes) -> None:
        if self._lost is not None:
            raise SessionLost(self._lost)
        self._transport.write(data)

    def send(self, lines: Sequence[bytes], payload: bytes = b"",
             ) -> list[asyncio.Future[ParsedReply]]:
        """Writes ``payload`` (a dot-stuffed message after a 354) and the command lines
        in one write, as one group (RFC 2920 3.1: the message content may be the first
        "command" of a group); one future per reply (the payload's first), read them
        with :meth:`replies`."""
        if self._lost is not None:
            raise SessionLost(self._lost)
        futures = [self._expect() for _ in range(len(lines) + (1 if payload else 0))]
        self._write(payload + b"".join(line + b"\r\n" for line in lines))
        return futures

    async def replies(self, futures: Sequence[asyncio.Future[ParsedReply]],
                      timeout: float | None = None) -> list[ParsedReply]:
        """The replies :meth:`send` promised, in order (SessionLost after ``timeout``)."""
        return await self._read(futures, self._timeout if timeout is None else timeout)

    async def commands(self, lines: Sequence[bytes], timeout: float | None = None,
                       ) -> list[ParsedReply]:
        """Send the command lines in one write; their replies, in order."""
        return await self.replies(self.send(lines), timeout)

    async def data(self, payload: bytes, timeout: float) -> ParsedReply:
        """The dot-stuffed message after a 354; the reply to it."""
        [reply] = await self.replies(self.send((), payload), timeout)
        return reply

    def close(self) -> None:
        self._fail("closed")
        self._transport.close()
