"""Address lists for ENVELOPE (RFC 3501 7.4.2 from RFC 5322 3.4 syntax).

The email package's address parsers decode encoded-words and flatten groups;
ENVELOPE needs raw display names and group markers, so this small tokenizer
reads the raw header value. Malformed input never raises: it yields what
could be recognised, like other servers do.
"""

from __future__ import annotations

import re

from mailserver.imap.mime.types import Address

# Dovecot's placeholders when a part of an address is missing.
MISSING_MAILBOX = b"MISSING_MAILBOX"
MISSING_DOMAIN = b"MISSING_DOMAIN"

Token = tuple[str, bytes]  # kind: "atom", "quoted", "special", "comment"


# One token per match: whitespace (skipped), a quoted string (group q, its
# closing quote optional), a special, an atom, the start of a comment, or any
# other single octet (a lone ")", "[", "]" or "\\", kept as text).
_SCAN = re.compile(rb'[ \t\r\n]+|"(?P<q>(?:[^"\\]|\\[\s\S]|\\\Z)*)"?|(?P<s>[<>@,;:.])'
                   rb'|(?P<a>[^ \t\r\n()<>@,;:\\".\[\]]+)|(?P<c>\()|(?P<o>[\s\S])')
_ESCAPED = re.compile(rb"\\([\s\S])")


def tokenize(value: bytes) -> list[Token]:
    """The lexical tokens of RFC 5322 3.2 (by regular expression: ENVELOPE
    of every message in a FETCH runs this)."""
    tokens: list[Token] = []
    pos = 0
    size = len(value)
    while pos < size:
        found = _SCAN.match(value, pos)
        assert found is not None  # the last alternative takes any octet
        kind = found.lastgroup
        if kind == "c":
            pos = _comment(value, pos, tokens)
            continue
        pos = found.end()
        if kind == "q":
            text = found.group("q")
            tokens.append(("quoted", _ESCAPED.sub(rb"\1", text) if b"\\" in text else text))
        elif kind == "s":
            tokens.append(("special", found.group("s")))
        elif kind in ("a", "o"):
            tokens.append(("atom", found.group(kind)))
    return tokens


def _comment(value: bytes, pos: int, tokens: list[Token]) -> int:
    """A comment from its "(" (they nest, RFC 5322 3.2.2); kept only as a
    name for an address without a phrase. Returns the position after it."""
    depth = 0
    start = pos + 1
    end = len(value)
    while pos < len(value):
        char = value[pos]
        if char == 0x5C:  # backslash: the next octet is quoted
            pos += 1
        elif char == 0x28:
            depth += 1
        elif char == 0x29:
            depth -= 1
            if depth == 0:
                end = pos
                pos += 1
                break
        pos += 1
    tokens.append(("comment", value[start:end].strip(b" \t")))
    return pos


def _phrase(tokens: list[Token]) -> bytes | None:
    words: list[bytes] = []
    for kind, text in tokens:
        if kind == "comment":
            continue
        if kind == "special" and text == b"." and words:
            words[-1] += text  # obs-phrase: "John Q. Public" (RFC 5322 4.1)
        elif text:
            words.append(text)
    return b" ".join(words) or None


def _local_part(tokens: list[Token]) -> bytes:
    out = bytearray()
    for kind, text in tokens:
        if kind == "comment":
            continue
        if kind == "quoted":
            out += b'"' + text.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        else:
            out += text
    return bytes(out)


def _addr_spec(tokens: list[Token]) -> tuple[bytes, bytes]:
    at = next((i for i, t in enumerate(tokens) if t == ("special", b"@")), None)
    if at is None:
        return _local_part(tokens) or MISSING_MAILBOX, MISSING_DOMAIN
    mailbox = _local_part(tokens[:at]) or MISSING_MAILBOX
    host = b"".join(text for kind, text in tokens[at + 1:]
                    if kind != "comment") or MISSING_DOMAIN
    return mailbox, host


def _comment_name(tokens: list[Token]) -> bytes | None:
    """The last non-empty comment of an addr-spec without a phrase:
    ``user@host (Real Name)`` is named that way (the RFC 822 habit RFC 5322
    3.4 still describes; Dovecot reads it so). A name-addr keeps its phrase."""
    comments = [text for kind, text in tokens if kind == "comment" and text]
    return comments[-1] if comments else None


def _mailbox(tokens: list[Token]) -> Address | None:
    if not [token for token in tokens if token[0] != "comment"]:
        return None
    if ("special", b"<") in tokens:
        open_at = tokens.index(("special", b"<"))
        close_at = next((i for i in range(open_at, len(tokens))
                         if tokens[i] == ("special", b">")), len(tokens))
        inner = tokens[open_at + 1:close_at]
        adl = None
        colon = next((i for i, t in enumerate(inner) if t == ("special", b":")), None)
        if colon is not None:  # obsolete source route "@a,@b:" (RFC 5322 4.4)
            adl = b"".join(text for kind, text in inner[:colon] if kind != "comment") or None
            inner = inner[colon + 1:]
        mailbox, host = _addr_spec(inner)
        return Address(_phrase(tokens[:open_at]), adl, mailbox, host)
    mailbox, host = _addr_spec(tokens)
    return Address(_comment_name(tokens), None, mailbox, host)


def parse_address_list(value: bytes | None) -> tuple[Address, ...] | None:
    """The ENVELOPE address list of a raw header value; None for NIL."""
    if value is None:
        return None
    tokens = tokenize(value)
    result: list[Address] = []
    current: list[Token] = []
    in_group = False
    for token in tokens:
        if token == ("special", b":") and not in_group and ("special", b"<") not in current:
            result.append(Address(None, None, _phrase(current) or b"", None))
            current = []
            in_group = True
        elif token == ("special", b";") and in_group:
            if (address := _mailbox(current)) is not None:
                result.append(address)
            result.append(Address(None, None, None, None))
            current = []
            in_group = False
        elif token == ("special", b",") and ("special", b"<") in current and (
                ("special", b">") not in current):
            current.append(token)  # a comma inside a source route
        elif token == ("special", b","):
            if (address := _mailbox(current)) is not None:
                result.append(address)
            current = []
        else:
            current.append(token)
    if (address := _mailbox(current)) is not None:
        result.append(address)
    if in_group:
        result.append(Address(None, None, None, None))
    return tuple(result) or None
