"""Locating MIME entities in the raw message bytes (RFC 2045, RFC 2046 5.1.1).

The header of every entity is parsed by the standard library email package
(``email.parser.BytesParser`` with ``policy=compat32``, which keeps header
values as raw as the package allows: no decoding, no refolding). The email
package does not report byte offsets, and IMAP needs exact octets of every
part (BODY[1.2], sizes, line counts), so the entity tree is cut from the raw
bytes here, following the boundaries the email package read from
Content-Type.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

# Deeper nesting is treated as a leaf: bounds recursion on hostile input.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Entity:
    """A MIME entity: its raw header (with the blank line ending it), raw
    body, parsed header, and children (multipart parts, or the one
    encapsulated message of message/rfc822)."""

    header: bytes
    body: bytes
    headers: Message
    children: tuple[Entity, ...] = field(default=())
    encapsulated: Entity | None = None

    @property
    def content_type(self) -> tuple[str, str]:
        return self.headers.get_content_maintype(), self.headers.get_content_subtype()

    @property
    def is_multipart(self) -> bool:
        return self.content_type[0] == "multipart" and bool(self.headers.get_boundary())

    @property
    def is_rfc822(self) -> bool:
        return self.content_type == ("message", "rfc822") or (
            self.content_type == ("message", "global"))


# A header line: a field name and colon, or a continuation (the email
# package's own test, ``email.feedparser.headerRE``).
_HEADER_LINE = re.compile(rb"[\041-\071\073-\176]*:|[\t ]")


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """Header (up to and including the first empty line) and body.

    A line that is neither a field nor a continuation ends the header
    without a blank line (RFC 5322 2.2, 3.5: the body follows the header
    fields): a body part written as ``--b CRLF hello CRLF`` is an empty
    header and the body ``hello``, as the email package and Dovecot read it.
    """
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        line = raw[pos:] if end < 0 else raw[pos:end + 1]
        if line in (b"\r\n", b"\n"):
            return raw[:pos + len(line)], raw[pos + len(line):]
        if _HEADER_LINE.match(line) is None:
            return raw[:pos], raw[pos:]
        if end < 0:
            break
        pos = end + 1
    return raw, b""


def parse_headers(header: bytes, default_type: str = "text/plain") -> Message:
    message = BytesParser(policy=compat32).parsebytes(header, headersonly=True)
    message.set_default_type(default_type)
    return message


def split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """The raw parts of a multipart body (RFC 2046 5.1.1): the CRLF before a
    delimiter belongs to the delimiter; preamble and epilogue are dropped."""
    parts: list[bytes] = []
    start: int | None = None
    for begin, end, closing in _delimiters(body, boundary):
        if start is not None:
            parts.append(body[start:begin])
        if closing:
            return parts
        start = end
    if start is not None:
        parts.append(body[start:])  # no close delimiter: the last part runs to the end
    return parts


_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*(?:\r?\n|\Z)")


def _delimiters(body: bytes, boundary: str) -> Iterator[tuple[int, int, bool]]:
    """(start, end, is_close) of each delimiter line: ``--boundary`` at the start
    of the body or of a line, its CRLF before it included.  Candidates are found
    with bytes.find, which is far faster than a regex scan of a 20 MB body."""
    marker = b"--" + boundary.encode("utf-8", "surrogateescape")
    pos = 0
    while (i := body.find(marker, pos)) >= 0:
        pos = i + 1
        if i == 0:
            begin = 0
        elif body[i - 1] == 0x0A:
            begin = i - 2 if i >= 2 and body[i - 2] == 0x0D else i - 1
        else:
            continue
        tail = _DELIMITER_TAIL.match(body, i + len(marker))
        if tail is None:
            continue
        yield begin, tail.end(), bool(tail.group(1))
        pos = tail.end()


def parse_entity(raw: bytes, default_type: str = "text/plain", depth: int = 0) -> Entity:
    """The entity tree of ``raw`` (a whole message or one body part)."""
    header, body = split_header(raw)
    headers = parse_headers(header, default_type)
    entity = Entity(header, body, headers)
    if depth >= MAX_DEPTH:
        return entity
    if entity.is_multipart:
        # RFC 2046 5.1.5: in multipart/digest the default type is message/rfc822.
        child_default = "message/rfc822" if entity.content_type[1] == "digest" else "text/plain"
        boundary = headers.get_boundary() or ""
        children = tuple(parse_entity(part, child_default, depth + 1)
                         for part in split_multipart(body, boundary))
        return Entity(header, body, headers, children=children)
    if entity.is_rfc822:
        return Entity(header, body, headers, encapsulated=parse_entity(body, depth=depth + 1))
    return entity


def header_fields(header: bytes) -> list[tuple[bytes, bytes]]:
    """Raw header fields as (lower-case name, complete raw field with its
    continuation lines and line endings), in order (RFC 5322 2.2)."""
    fields: list[tuple[bytes, bytes]] = []
    for line in re.findall(rb"[^\n]*\n|[^\n]+\Z", header):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            name, text = fields[-1]
            fields[-1] = (name, text + line)
            continue
        name = line.split(b":", 1)[0].strip().lower() if b":" in line else b""
        fields.append((name, line))
    return fields


def header_value(header: bytes, name: bytes) -> bytes | None:
    """The first field ``name``'s raw value, unfolded (RFC 5322 2.2.3), or None."""
    for field_name, text in header_fields(header):
        if field_name == name.lower():
            return unfold(text.split(b":", 1)[1])
    return None


def unfold(value: bytes) -> bytes:
    """A raw field value unfolded (RFC 5322 2.2.3) and trimmed."""
    return value.replace(b"\r", b"").replace(b"\n", b"").strip(b" \t")
