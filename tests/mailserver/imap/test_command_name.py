"""``command_name``: the IMAP command a line names, for the per-command metrics."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailserver.imap.wire.parser import _HANDLERS, _NO_ARGUMENTS, command_name

NAMES = {*_HANDLERS, *_NO_ARGUMENTS, "DONE", "other"} | {
    f"UID {c}" for c in ("FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE")}


def test_names() -> None:
    assert command_name(b"a1 LOGIN anna {5}") == "LOGIN"
    assert command_name(b"a2 uid fetch 1:* (FLAGS)") == "UID FETCH"
    assert command_name(b"a3 FETCH 1 BODY[]") == "FETCH"
    assert command_name(b"DONE") == "DONE"
    assert command_name(b"a4 UID LOGIN") == "other"
    assert command_name(b"a5 XYZZY") == "other"
    assert command_name(b"") == "other"


@given(st.binary(max_size=80))
def test_any_line_gives_one_of_a_few_names(line: bytes) -> None:
    assert command_name(line) in NAMES
