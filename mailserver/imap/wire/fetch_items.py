"""FETCH data items (RFC 9051 6.4.5, RFC 3501 6.4.5, BINARY RFC 3516,
CONDSTORE RFC 7162 3.1.4) as typed values, with their parsing."""

from __future__ import annotations

from dataclasses import dataclass

from mailserver.imap.wire.errors import ParseError
from mailserver.imap.wire.reader import Reader

SIMPLE_ITEMS = frozenset({
    "FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE",
    "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ", "EMAILID", "THREADID", "SAVEDATE",
})
# RFC 9051 6.4.5: the macros and what they stand for.
MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
SECTION_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})


@dataclass(frozen=True)
class Section:
    """A body section (RFC 9051 6.4.5 ``section-spec``).

    ``part`` is the part number path ("1.2" is ``(1, 2)``, empty for the
    whole message); ``text`` one of HEADER, HEADER.FIELDS,
    HEADER.FIELDS.NOT, TEXT, MIME (MIME needs a part); ``fields`` the
    header field names of HEADER.FIELDS[.NOT].
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        pieces = [str(number) for number in self.part]
        if self.text:
            pieces.append(self.text)
        spec = ".".join(pieces)
        if self.fields:
            spec += " (" + " ".join(_header_name(name) for name in self.fields) + ")"
        return spec


def _header_name(name: str) -> str:
    # astring: an atom when possible, else quoted (field names are printable).
    if name and all(33 <= ord(c) <= 126 and c not in '(){%*"\\]' for c in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class FetchItem:
    """A data item without arguments: FLAGS, UID, ENVELOPE, BODY, ..."""

    name: str


@dataclass(frozen=True)
class FetchBody:
    """``BODY[section]<origin.count>`` / ``BODY.PEEK[...]`` (RFC 9051 6.4.5)."""

    section: Section
    partial: tuple[int, int] | None = None
    peek: bool = False


@dataclass(frozen=True)
class FetchBinary:
    """``BINARY[part]<origin.count>`` / ``BINARY.PEEK[...]`` (RFC 3516 4.2)."""

    part: tuple[int, ...] = ()
    partial: tuple[int, int] | None = None
    peek: bool = False


@dataclass(frozen=True)
class FetchBinarySize:
    """``BINARY.SIZE[part]`` (RFC 3516 4.2)."""

    part: tuple[int, ...] = ()


FetchAttribute = FetchItem | FetchBody | FetchBinary | FetchBinarySize


# Parsed attribute lists by the rest of the command line they were parsed
# from: clients send the same few lists again and again (the attributes are
# immutable, so one tuple serves every command).  Bounded; cleared when full.
_PARSED: dict[bytes, tuple[tuple[FetchAttribute, ...], int]] = {}
_PARSED_MAX = 1024
_PARSED_KEY_MAX = 256


def parse_fetch_attributes(reader: Reader) -> tuple[FetchAttribute, ...]:
    """A macro, one attribute, or a parenthesised list (RFC 9051 9, ``fetch``).
    A list parsed before from the same rest of the line is taken from
    ``_PARSED`` (only when the parse stayed within that line segment, so the
    result depends on nothing but those octets)."""
    key = reader.rest_of_segment()
    if len(key) > _PARSED_KEY_MAX:
        return _parse_fetch_attributes(reader)
    known = _PARSED.get(key)
    if known is not None:
        reader.advance(known[1])
        return known[0]
    segment, start = reader.position()
    attributes = _parse_fetch_attributes(reader)
    after, end = reader.position()
    if after == segment:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = (attributes, end - start)
    return attributes


def _parse_fetch_attributes(reader: Reader) -> tuple[FetchAttribute, ...]:
    if reader.peek_is(b"("):
        attributes = reader.parenthesized(lambda: parse_fetch_attribute(reader))
        if not attributes:
            raise ParseError("empty fetch attribute list")
        return tuple(attributes)
    name = reader.keyword()
    if name in MACROS:
        return tuple(FetchItem(item) for item in MACROS[name])
    return (_attribute_named(reader, name),)


def parse_fetch_attribute(reader: Reader) -> FetchAttribute:
    return _attribute_named(reader, reader.keyword())


def _attribute_named(reader: Reader, name: str) -> FetchAttribute:
    if name in ("BODY", "BODY.PEEK") and reader.peek_is(b"["):
        section = _section(reader)
        return FetchBody(section, _partial(reader), peek=name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK"):
        part = _binary_part(reader)
        return FetchBinary(part, _partial(reader), peek=name == "BINARY.PEEK")
    if name == "BINARY.SIZE":
        return FetchBinarySize(_binary_part(reader))
    if name in SIMPLE_ITEMS:
        return FetchItem(name)
    raise ParseError(f"unknown fetch attribute {name[:40]}")


def _part_numbers(words: list[str]) -> tuple[tuple[int, ...], list[str]]:
    if "" in words:
        raise ParseError("invalid section")
    numbers: list[int] = []
    while words and words[0].isdigit():
        if len(words[0]) > 9 or int(words[0]) == 0:
            raise ParseError("invalid section part number")
        numbers.append(int(words.pop(0)))
    return tuple(numbers), words


def _section(reader: Reader) -> Section:
    reader.expect(b"[")
    if reader.skip(b"]"):
        return Section()
    words = reader.keyword().split(".")
    part, rest = _part_numbers(words)
    text = ".".join(rest) or None
    if text is not None and text not in SECTION_TEXTS:
        raise ParseError("invalid section")
    if text == "MIME" and not part:
        raise ParseError("MIME needs a part number")
    fields: tuple[str, ...] = ()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        reader.space()
        names = reader.parenthesized(reader.astring)
        if not names:
            raise ParseError("empty header list")
        try:
            fields = tuple(name.decode("ascii") for name in names)
        except UnicodeDecodeError as error:
            raise ParseError("header field names are ASCII") from error
    reader.expect(b"]")
    return Section(part, text, fields)


def _binary_part(reader: Reader) -> tuple[int, ...]:
    reader.expect(b"[")
    if reader.skip(b"]"):
        return ()
    part, rest = _part_numbers(reader.keyword().split("."))
    if rest or not part:
        raise ParseError("invalid binary section")
    reader.expect(b"]")
    return part


def _partial(reader: Reader) -> tuple[int, int] | None:
    if not reader.skip(b"<"):
        return None
    origin = reader.number()
    reader.expect(b".")
    count = reader.nz_number()
    reader.expect(b">")
    return origin, count


def format_attribute(attribute: FetchAttribute) -> str:
    """The request form of an attribute (for clients and round trips)."""
    if isinstance(attribute, FetchItem):
        return attribute.name
    if isinstance(attribute, FetchBody):
        name = "BODY.PEEK" if attribute.peek else "BODY"
        return f"{name}[{attribute.section}]{_format_partial(attribute.partial)}"
    if isinstance(attribute, FetchBinary):
        name = "BINARY.PEEK" if attribute.peek else "BINARY"
        part = ".".join(map(str, attribute.part))
        return f"{name}[{part}]{_format_partial(attribute.partial)}"
    return "BINARY.SIZE[" + ".".join(map(str, attribute.part)) + "]"


def _format_partial(partial: tuple[int, int] | None) -> str:
    return "" if partial is None else f"<{partial[0]}.{partial[1]}>"
