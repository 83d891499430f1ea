"""Stored flag encoding (RFC 9051 2.3.2): properties of encode/decode/apply."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailserver.store import FlagMode, InvalidFlag
from mailserver.store import flags as fl

system = st.sampled_from(["\\Seen", "\\SEEN", "\\answered", "\\Flagged", "\\Deleted", "\\Draft"])
keyword = st.text(st.characters(min_codepoint=33, max_codepoint=126,
                                exclude_characters='()]{%*"\\'), min_size=1, max_size=12)
flag_lists = st.lists(st.one_of(system, keyword), max_size=6)


def lowered(flags: frozenset[str]) -> set[str]:
    return {f.lower() for f in flags}


@given(flag_lists)
def test_encode_decode_keeps_every_flag_case_insensitively(flags: list[str]) -> None:
    bits, keywords = fl.encode(flags)
    decoded = fl.decode(bits, fl.keywords_text(keywords))
    assert lowered(decoded) == {f.lower() for f in flags}
    assert len(decoded) == len(lowered(decoded))  # no duplicates in different spellings
    for k in keywords:  # keywords keep the first spelling the client used
        assert k == next(f for f in flags if f.lower() == k.lower())


@given(flag_lists, flag_lists)
def test_add_then_remove_is_set_algebra(current: list[str], given_: list[str]) -> None:
    bits, keywords = fl.encode(current)
    text = fl.keywords_text(keywords)
    g = fl.encode(given_)
    added = fl.apply(FlagMode.ADD, bits, text, *g)
    assert lowered(fl.decode(*added)) == lowered(fl.decode(bits, text)) | {
        f.lower() for f in given_}
    removed = fl.apply(FlagMode.REMOVE, *added, *g)
    assert lowered(fl.decode(*removed)) == lowered(fl.decode(bits, text)) - {
        f.lower() for f in given_}
    replaced = fl.apply(FlagMode.REPLACE, bits, text, *g)
    assert lowered(fl.decode(*replaced)) == {f.lower() for f in given_}
    assert fl.same(*added, *fl.apply(FlagMode.ADD, *added, *g))  # idempotent


def test_recent_is_not_stored_and_unknown_system_flags_are_refused() -> None:
    assert fl.encode(["\\Recent", "\\seen"]) == (fl.SEEN, ())
    for bad in ("\\Important", "two words", "", "a(b"):
        with pytest.raises(InvalidFlag):
            fl.encode([bad])
