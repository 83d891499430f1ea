"""Token reading over a framed command (RFC 9051 9, formal syntax).

The reader walks the segments of a ``CommandUnit``; when a string is a
literal, its octets come from the unit and reading goes on in the next
segment. Every failure is a ``ParseError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from mailserver.imap.wire.errors import ParseError
from mailserver.imap.wire.framer import CommandUnit

# ATOM-CHAR: any CHAR except atom-specials "(" ")" "{" SP CTL "%" "*" DQUOTE
# "\" "]" (RFC 9051 9). ASTRING-CHAR adds "]"; list-char adds "%" "*" "]".
_ATOM = re.compile(rb"[\x21\x23\x24\x26-\x27\x2b-\x5b\x5e-\x7a\x7c-\x7e]+")
_ASTRING = re.compile(rb"[\x21\x23\x24\x26-\x27\x2b-\x5b\x5d-\x7a\x7c-\x7e]+")
_LIST_CHARS = re.compile(rb"[\x21\x23-\x27\x2a-\x5b\x5d-\x7a\x7c-\x7e]+")
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\Z")
_NUMBER = re.compile(rb"[0-9]{1,20}")
_TAG = re.compile(rb"[\x21\x23\x24\x26\x27\x2c-\x5b\x5d-\x7a\x7c-\x7e]+")
_SEQUENCE = re.compile(rb"[0-9*:,$]+")
# Names of fetch attributes, search keys, options: letters, digits, ".", "-".
_KEYWORD = re.compile(rb"[A-Za-z0-9.\-]+")
T = TypeVar("T")


class Reader:
    """A cursor over one command unit."""

    def __init__(self, unit: CommandUnit) -> None:
        self._segments = unit.segments
        self._literals = unit.literals
        self._index = 0
        self._pos = 0

    @property
    def _text(self) -> bytes:
        return self._segments[self._index]

    def position(self) -> tuple[int, int]:
        """A mark to come back to with ``restore`` (one token of lookahead)."""
        return self._index, self._pos

    def restore(self, mark: tuple[int, int]) -> None:
        self._index, self._pos = mark

    def rest_of_segment(self) -> bytes:
        """What is left of the current line segment (up to the next literal)."""
        return self._text[self._pos:]

    def advance(self, octets: int) -> None:
        """Skip ``octets`` of the current segment (already parsed once)."""
        self._pos += octets

    def at_end(self) -> bool:
        return self._index == len(self._segments) - 1 and self._pos == len(self._text)

    def at_line_end(self) -> bool:
        """End of the unit, or a literal marker comes next (is mid-unit)."""
        return self._pos == len(self._text)

    def peek(self) -> int | None:
        text = self._text
        return text[self._pos] if self._pos < len(text) else None

    def peek_is(self, char: bytes) -> bool:
        return self._text.startswith(char, self._pos)

    def skip(self, char: bytes) -> bool:
        """Consume ``char`` if it is next."""
        if self.peek_is(char):
            self._pos += len(char)
            return True
        return False

    def expect(self, char: bytes, what: str | None = None) -> None:
        if not self.skip(char):
            raise ParseError(f"expected {what or char.decode('ascii')!s}")

    def space(self) -> None:
        self.expect(b" ", "space")

    def end(self) -> None:
        if not self.at_end():
            raise ParseError("unexpected characters at end of command")

    def _match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        found = pattern.match(self._text, self._pos)
        if not found:
            raise ParseError(f"expected {what}")
        self._pos = found.end()
        return found.group()

    def atom(self) -> bytes:
        return self._match(_ATOM, "atom")

    def keyword(self) -> str:
        """An option or item name, upper-cased (names are case-insensitive)."""
        return self._match(_KEYWORD, "keyword").decode("ascii").upper()

    def peek_keyword(self) -> str | None:
        """The next keyword, upper-cased, without consuming it."""
        found = _KEYWORD.match(self._text, self._pos)
        return found.group().decode("ascii").upper() if found else None

    def tag(self) -> str:
        """``tag`` = 1*<any ASTRING-CHAR except "+"> (RFC 9051 9)."""
        return self._match(_TAG, "tag").decode("ascii")

    def number(self) -> int:
        return int(self._match(_NUMBER, "number"))

    def nz_number(self) -> int:
        value = self.number()
        if value == 0:
            raise ParseError("expected a non-zero number")
        return value

    def sequence_token(self) -> bytes:
        return self._match(_SEQUENCE, "sequence set")

    def literal_marker_next(self) -> bool:
        return bool(_LITERAL.match(self._text, self._pos))

    def literal(self, *, allow_binary: bool = False) -> tuple[bytes, bool]:
        """A literal's octets and whether it was a literal8 (``~{N}``)."""
        found = _LITERAL.match(self._text, self._pos)
        if not found:
            raise ParseError("expected literal")
        binary = bool(found.group(1))
        if binary and not allow_binary:
            raise ParseError("literal8 not allowed here")
        if self._index >= len(self._literals):
            raise ParseError("literal data missing")
        data = self._literals[self._index]
        if len(data) != int(found.group(2)):
            raise ParseError("literal length mismatch")
        if not binary and b"\x00" in data:
            # NUL is only allowed in literal8 (RFC 9051 4.3).
            raise ParseError("NUL in literal")
        self._index += 1
        self._pos = 0
        return data, binary

    def quoted(self) -> bytes:
        self.expect(b'"', "quoted string")
        text = self._text
        out = bytearray()
        pos = self._pos
        while pos < len(text):
            byte = text[pos]
            if byte == 0x22:
                self._pos = pos + 1
                return bytes(out)
            if byte == 0x5C:
                pos += 1
                if pos >= len(text) or text[pos] not in b'"\\':
                    raise ParseError("invalid escape in quoted string")
                byte = text[pos]
            elif byte in (0x00, 0x0D, 0x0A):
                raise ParseError("invalid character in quoted string")
            out.append(byte)
            pos += 1
        raise ParseError("unterminated quoted string")

    def string(self) -> bytes:
        """``string`` = quoted / literal (RFC 9051 9)."""
        if self.peek_is(b'"'):
            return self.quoted()
        return self.literal()[0]

    def astring(self) -> bytes:
        """``astring`` = 1*ASTRING-CHAR / string."""
        if self.peek_is(b'"') or self.literal_marker_next():
            return self.string()
        return self._match(_ASTRING, "string")

    def nstring(self) -> bytes | None:
        if self._nil_next():
            return None
        return self.string()

    def nstring_is_nil(self) -> bool:
        """Consume ``NIL`` if it comes next."""
        return self._nil_next()

    def _nil_next(self) -> bool:
        text = self._text
        if text[self._pos:self._pos + 3].upper() == b"NIL":
            after = text[self._pos + 3:self._pos + 4]
            if after in (b"", b" ", b")"):
                self._pos += 3
                return True
        return False

    def list_mailbox(self) -> bytes:
        """``list-mailbox`` = 1*list-char / string (patterns with % and *)."""
        if self.peek_is(b'"') or self.literal_marker_next():
            return self.string()
        return self._match(_LIST_CHARS, "mailbox pattern")

    def parenthesized(self, item: Callable[[], T]) -> list[T]:
        """``"(" [item *(SP item)] ")"``: a possibly empty list."""
        self.expect(b"(")
        items: list[T] = []
        if self.skip(b")"):
            return items
        while True:
            items.append(item())
            if self.skip(b")"):
                return items
            self.space()
