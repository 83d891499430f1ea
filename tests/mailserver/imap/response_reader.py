"""A small test-side reader of IMAP response syntax (RFC 9051 4): atoms,
numbers, quoted strings, literals (also literal8), NIL and parenthesised
lists, to get values back out of serialized responses."""

from __future__ import annotations

import re

_ATOM = re.compile(rb"[^ ()\"{\r\n\[\]]+(?:\[[^\]]*\](?:<[0-9]+>)?)?")


class Atom(bytes):
    """An unquoted word (distinguished from strings by type)."""


def read(data: bytes) -> list[object]:
    """All tokens of one response line (with its literals), top level."""
    items, pos = _read_items(data, 0, top=True)
    assert data[pos:] == b"\r\n", data[pos:]
    return items


def _read_items(data: bytes, pos: int, top: bool) -> tuple[list[object], int]:
    items: list[object] = []
    while pos < len(data):
        char = data[pos:pos + 1]
        if char == b" ":
            pos += 1
        elif char == b"\r" and top:
            return items, pos
        elif char == b")" and not top:
            return items, pos + 1
        elif char == b"(":
            inner, pos = _read_items(data, pos + 1, top=False)
            items.append(inner)
        elif char == b'"':
            out = bytearray()
            pos += 1
            while data[pos:pos + 1] != b'"':
                if data[pos:pos + 1] == b"\\":
                    pos += 1
                out += data[pos:pos + 1]
                pos += 1
            items.append(bytes(out))
            pos += 1
        elif char in (b"{", b"~"):
            match = re.compile(rb"~?\{([0-9]+)\+?\}\r\n").match(data, pos)
            assert match, data[pos:pos + 20]
            size = int(match.group(1))
            items.append(data[match.end():match.end() + size])
            pos = match.end() + size
        else:
            match = _ATOM.match(data, pos)
            assert match, data[pos:pos + 20]
            word = match.group()
            items.append(None if word == b"NIL" else Atom(word))
            pos = match.end()
    return items, pos
