"""ManageSieve wire format (RFC 5804 4): commands in, responses out.

Pure: ``tokenize`` turns one command line (with its literals already read,
see ``literal_announced``) into words; the ``Response`` helpers render replies.
Client strings are quoted strings or literals ``{n+}`` (RFC 5804 4,
``literal-c2s``; the synchronising ``{n}`` form is accepted too, as some
clients send it); server strings are quoted when they can be, literals
otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LITERAL = re.compile(rb"\{([0-9]{1,10})\+?\}\Z")


class WireError(ValueError):
    """A malformed command: answered with NO and counted as an error."""


@dataclass(frozen=True)
class Literal:
    """A literal already read from the stream (RFC 5804 4)."""

    data: bytes


Word = str | int | Literal


def literal_announced(line: bytes) -> int | None:
    """The size of the literal ``line`` ends with (``{n+}``), or None."""
    found = _LITERAL.search(line.rstrip(b"\r\n"))
    if found is None:
        return None
    return int(found.group(1))


def strip_literal_marker(line: bytes) -> bytes:
    """``line`` without its trailing ``{n+}`` announcement."""
    stripped = line.rstrip(b"\r\n")
    return stripped[:stripped.rfind(b"{")]


def tokenize(parts: list[bytes | Literal]) -> list[Word]:
    """Words of one command: atoms (upper-cased command name first), quoted
    strings, numbers and literals; ``parts`` alternates line text and literals."""
    words: list[Word] = []
    for part in parts:
        if isinstance(part, Literal):
            words.append(part)
            continue
        try:
            text = part.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("command is not UTF-8") from None
        i = 0
        while i < len(text):
            c = text[i]
            if c in " \t\r\n":
                i += 1
            elif c == '"':
                value, i = _quoted(text, i + 1)
                words.append(value)
            elif c.isdigit():
                end = i
                while end < len(text) and text[end].isdigit():
                    end += 1
                if end - i > 10:
                    raise WireError("number too large")
                words.append(int(text[i:end]))
                i = end
            elif c.isalpha():
                end = i
                while end < len(text) and (text[end].isalnum() or text[end] in "-_"):
                    end += 1
                words.append(text[i:end].upper())
                i = end
            else:
                raise WireError(f"unexpected character {c!r}")
    return words


def _quoted(text: str, i: int) -> tuple[str, int]:
    """RFC 5804 4: ``\\`` escapes ``"`` and ``\\`` only; no CR or LF inside."""
    out: list[str] = []
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] not in '"\\':
                raise WireError("bad escape in quoted string")
            i += 1
            c = text[i]
        elif c in "\r\n\x00":
            raise WireError("control character in quoted string")
        out.append(c)
        i += 1
    raise WireError("unterminated quoted string")


def string(value: str | bytes) -> bytes:
    """A server string: quoted when it can be, a literal otherwise (RFC 5804 4)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) < 1024 and not any(b in data for b in b'\r\n"\\\x00'):
        return b'"' + data + b'"'
    return b"{%d}\r\n" % len(data) + data


def response(kind: str, text: str = "", code: str = "") -> bytes:
    """``OK``/``NO``/``BYE`` with an optional response code and human text (RFC 5804 1.3)."""
    line = kind.encode()
    if code:
        line += b" (" + code.encode() + b")"
    if text:
        line += b" " + string(text)
    return line + b"\r\n"
