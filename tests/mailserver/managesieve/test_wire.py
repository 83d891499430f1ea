"""ManageSieve wire format (RFC 5804 4): tokens, literals, server strings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailserver.managesieve import wire
from mailserver.managesieve.wire import Literal, WireError


def test_commands_strings_numbers_and_literals() -> None:
    assert wire.tokenize([b'havespace "regeln" 1234\r\n']) == ["HAVESPACE", "regeln", 1234]
    assert wire.tokenize([b'PUTSCRIPT "a\\"b\\\\c" ', Literal(b"keep;"), b"\r\n"]) == [
        "PUTSCRIPT", 'a"b\\c', Literal(b"keep;")]
    assert wire.literal_announced(b'PUTSCRIPT "x" {12+}\r\n') == 12
    assert wire.literal_announced(b'PUTSCRIPT "x" {12}\r\n') == 12
    assert wire.literal_announced(b'PUTSCRIPT "{12+}"\r\n') is None
    assert wire.strip_literal_marker(b'PUTSCRIPT "x" {12+}\r\n') == b'PUTSCRIPT "x" '


@pytest.mark.parametrize("line", [b'"open', b'"bad \\x escape"', b"@", b"1" * 12,
                                  b'"\xff"'])
def test_malformed_lines_are_wire_errors(line: bytes) -> None:
    with pytest.raises(WireError):
        wire.tokenize([line])


@settings(deadline=None)  # the machine may be busy: no per-example deadline
@given(st.binary(max_size=200))
def test_any_line_tokenizes_or_is_a_wire_error(line: bytes) -> None:
    try:
        words = wire.tokenize([line])
    except WireError:
        return
    assert all(isinstance(w, str | int) for w in words)


@settings(deadline=None)  # the machine may be busy: no per-example deadline
@given(st.text(max_size=50))
def test_server_strings_read_back(value: str) -> None:
    rendered = wire.string(value)
    if rendered.startswith(b'"'):
        assert wire.tokenize([rendered]) == [value]
    else:
        header, _, data = rendered.partition(b"\r\n")
        assert wire.literal_announced(header) == len(data)
        assert data.decode() == value


def test_responses() -> None:
    assert wire.response("OK") == b"OK\r\n"
    assert wire.response("NO", "No such script", code="NONEXISTENT") == \
        b'NO (NONEXISTENT) "No such script"\r\n'
    assert wire.response("NO", 'line 2: "x"') == b'NO {11}\r\nline 2: "x"\r\n'
