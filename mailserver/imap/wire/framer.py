"""Incremental command framing: socket bytes -> complete command units.

An IMAP command is one line, except that a string may be sent as a literal
(RFC 9051 4.3): the line ends in ``{N}``, the server answers with a
continuation request (RFC 9051 7.5) and the client sends N octets followed by
the rest of the command. ``{N+}`` is a non-synchronising literal (LITERAL+,
RFC 7888) sent without waiting, ``~{N}`` a literal8 (BINARY, RFC 3516 4.1;
RFC 9051 4.3). The framer does only this splitting; tokens are parsed later.

Limits protect memory: a line over ``max_line_length`` is fatal (the session
sends ``BYE``); a literal over ``max_literal_size`` (or making the command
exceed ``max_command_size``) is refused with ``NO [TOOBIG]`` (RFC 7889,
RFC 9051 7.1). A synchronising literal is then never continued and the
session goes on. A non-synchronising one (RFC 7888 4) was sent without
asking: reading and dropping its octets would keep the connection busy for
as long as the client likes (``{2147483648+}``), so the framer stops there
and the session closes the connection after the refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LITERAL_MARKER = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\Z")
_TAG = re.compile(rb"[\x21\x23\x24\x26\x27\x2c-\x5b\x5d-\x7a\x7c-\x7e]+")


@dataclass(frozen=True)
class CommandUnit:
    """One complete command (or one continuation line such as ``DONE``).

    ``segments`` are the line texts without CRLF; every segment but the last
    ends in the literal marker whose octets are ``literals`` at the same index.
    """

    segments: tuple[bytes, ...]
    literals: tuple[bytes, ...] = ()

    @property
    def tag(self) -> str | None:
        """The tag when the first word looks like one, for error replies."""
        return tag_of(self.segments[0]) if self.segments else None


@dataclass(frozen=True)
class ContinuationRequest:
    """The session must now send ``+ Ready for literal data`` (RFC 9051 7.5)."""

    size: int


@dataclass(frozen=True)
class LiteralTooBig:
    """A literal over the limit: answer ``<tag> NO [TOOBIG]`` (RFC 7889).

    The command is dropped. For a synchronising literal no continuation was
    requested; for a non-synchronising one the framer discards its octets
    and the rest of that command.
    """

    tag: str | None
    size: int
    synchronizing: bool


@dataclass(frozen=True)
class FramingFailure:
    """Fatal: the session sends ``* BYE`` and closes. The framer stops."""

    text: str


FramerEvent = CommandUnit | ContinuationRequest | LiteralTooBig | FramingFailure


def tag_of(line: bytes) -> str | None:
    """The tag of a command line (RFC 9051 9, ``tag``), or None."""
    word = line.split(b" ", 1)[0]
    return word.decode("ascii") if _TAG.fullmatch(word) else None


class CommandFramer:
    """Feed socket bytes, get framing events out in order."""

    def __init__(self, *, max_line_length: int = 65536, max_literal_size: int = 64 << 20,
                 max_command_size: int | None = None) -> None:
        self.max_line_length = max_line_length
        self.max_literal_size = max_literal_size
        # MULTIAPPEND and many small literals both add up: bound the whole unit.
        self.max_command_size = (max_command_size if max_command_size is not None
                                 else max_literal_size + 16 * max_line_length)
        self._line = bytearray()
        self._segments: list[bytes] = []
        self._literals: list[bytes] = []
        self._size = 0
        self._literal = bytearray()
        self._literal_remaining = 0
        self._in_literal = False
        self._failed = False

    @property
    def failed(self) -> bool:
        return self._failed

    def feed(self, data: bytes) -> list[FramerEvent]:
        """Consume ``data``; return the events it completes."""
        events: list[FramerEvent] = []
        data = bytes(data)
        pos = 0
        while pos < len(data) and not self._failed:
            if self._in_literal:
                take = min(self._literal_remaining, len(data) - pos)
                self._literal.extend(data[pos:pos + take])
                self._literal_remaining -= take
                pos += take
                if self._literal_remaining == 0:
                    self._finish_literal()
                continue
            # Look no further than the line may be long: never scan or keep more.
            room = self.max_line_length + 2 - len(self._line)
            newline = data.find(b"\n", pos, pos + max(room, 0))
            if newline < 0:
                self._line.extend(data[pos:pos + max(room, 0)])
                pos = len(data)
                if len(self._line) > self.max_line_length + 1:  # +1: a CR may follow
                    events.append(self._fail("command line too long"))
                continue
            self._line.extend(data[pos:newline])
            pos = newline + 1
            line = bytes(self._line)
            self._line.clear()
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.max_line_length:
                events.append(self._fail("command line too long"))
                continue
            self._end_of_line(line, events)
        return events

    def _fail(self, text: str) -> FramingFailure:
        self._failed = True
        return FramingFailure(text)

    def _end_of_line(self, line: bytes, events: list[FramerEvent]) -> None:
        marker = _LITERAL_MARKER.search(line)
        self._size += len(line)
        if self._size > self.max_command_size:
            events.append(self._fail("command too long"))
            return
        self._segments.append(line)
        if marker is None:
            events.append(CommandUnit(tuple(self._segments), tuple(self._literals)))
            self._reset()
            return
        size = int(marker.group(2))
        synchronizing = not marker.group(3)
        if size > self.max_literal_size or self._size + size > self.max_command_size:
            events.append(LiteralTooBig(tag_of(self._segments[0]), size, synchronizing))
            self._reset()
            if not synchronizing:
                # Its octets are already on the way: refuse and close (RFC 7888 4).
                events.append(self._fail("non-synchronizing literal too big"))
            return
        if synchronizing:
            events.append(ContinuationRequest(size))
        self._size += size
        self._start_literal(size)

    def _start_literal(self, size: int) -> None:
        self._in_literal = True
        self._literal_remaining = size
        if size == 0:
            self._finish_literal()

    def _finish_literal(self) -> None:
        self._in_literal = False
        self._literals.append(bytes(self._literal))
        self._literal.clear()

    def _reset(self) -> None:
        self._segments = []
        self._literals = []
        self._size = 0


def frame_all(data: bytes, **limits: int) -> list[FramerEvent]:
    """Frame a complete byte string at once (tests, clients, tools)."""
    return CommandFramer(**limits).feed(data)
