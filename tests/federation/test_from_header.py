"""The From domain for DMARC: the fast path must agree with the email package."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from federation.from_header import (
    UNDECIDED,
    fast_from_domain,
    from_domain,
    parsed_from_domain,
)
from tests.support.properties import examples


@pytest.mark.parametrize(("message", "domain"), [
    (b"From: A <a@Schule.Test>\r\n\r\nhi", "schule.test"),
    (b"To: b@x.test\r\n\r\nhi", None),
    (b"From: a@x.test\r\nFrom: b@y.test\r\n\r\n", None),
    (b"From: a@x.test, b@y.test\r\n\r\n", None),
    (b"From: a@x.test, b@x.test\r\n\r\n", "x.test"),
    (b'From: "Evil <e@evil.test>" <a@good.test>\r\n\r\n', "good.test"),
    (b"From: =?utf-8?q?M=C3=BCller?= <m@schule.test>\r\n\r\n", "schule.test"),
    (b"From: a@x.test (comment <c@y.test>)\r\n\r\n", "x.test"),
    (b"Subject: s\r\nbroken line\r\nFrom: a@x.test\r\n\r\n", None),  # From is in the body
    (b"From: A\r\n <a@folded.test>\r\n\r\n", "folded.test"),
    (b"From : a@x.test\r\n\r\n", None),
])
def test_from_domain(message: bytes, domain: str | None) -> None:
    assert from_domain(message) == domain
    assert parsed_from_domain(message) == domain


def test_common_shapes_take_the_fast_path() -> None:
    assert fast_from_domain(b"From: Frau Lehrerin <l@Schule.Test>\r\nTo: x@y\r\n\r\n") == \
        "schule.test"
    assert fast_from_domain(b"Subject: x\r\nFrom: l@schule.test\r\n\r\nbody") == "schule.test"
    assert fast_from_domain(b"From: a@x.test (comment)\r\n\r\n") is UNDECIDED
    assert fast_from_domain(b"From: a@x.test\nTo: b@y\n\n") is UNDECIDED


# Pieces that make From fields and header blocks near the edges of the fast
# path's patterns: quotes, escapes, comments, groups, folding, odd separators.
_pieces = st.sampled_from([
    "a", "B", "0", ".", "-", "_", "=", "?", "@", "<", ">", '"', "\\", "(", ")", ",", ";",
    ":", " ", "\t", "\r\n ", "x.test", "Schule.Test", "=?utf-8?q?M=C3=BCller?=", "ü", "[",
    "]", "..", "\r", "\n",
])
_values = st.lists(_pieces, max_size=14).map("".join)
_names = st.sampled_from(["From"] * 6 + ["from", "FROM", "From ", "To", "Subject", "X-Y", "Fröm"])


_locals = st.lists(st.sampled_from(["a"] * 6 + ["Z", "9", ".", "+", "-", "=", "'", '"', " ",
                                                 "(", "\\", "ü"]),
                   min_size=1, max_size=5).map("".join)
_domains = st.lists(st.sampled_from(["x", "x.", "Test", "0", ".", "-", "..", "ü", "[1.2.3.4]",
                                     " "] + ["x.test"] * 4),
                    min_size=1, max_size=4).map("".join)
_displays = st.lists(st.sampled_from(["Frau"] * 4 + [" "] * 3 + [
    "Müller", '"', '"q d"', "\\", ".", ",", "(c)", "=?utf-8?q?M=C3=BCller?=", "<", "@"]),
    max_size=4).map("".join)


@st.composite
def from_values(draw: st.DrawFn) -> str:
    """Mostly address-shaped values, with tricky characters mixed in."""
    address = draw(_locals) + "@" + draw(_domains)
    spaces = draw(st.sampled_from(["", " ", "  ", "\t"]))
    if draw(st.booleans()):
        return spaces + address + draw(st.sampled_from(["", " ", ", b@x.test"]))
    return spaces + draw(_displays) + draw(st.sampled_from(["", " "])) + f"<{address}>"


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    fields = draw(st.lists(st.tuples(_names, st.one_of(_values, from_values(),
                                                          from_values())),
                           min_size=0, max_size=3))
    extra = draw(st.sampled_from(["", "", "", "junk line\r\n", " leading continuation\r\n"]))
    head = extra + "".join(f"{name}:{value}\r\n" for name, value in fields)
    return head.encode("utf-8") + b"\r\nbody\r\n"


@settings(max_examples=examples(1500), deadline=None)
@given(messages())
@example(b"From: a@x.test\r\n\r\n")
@example(b'From: "a b" <c@d.test>\r\n\r\n')
def test_fast_path_agrees_with_the_email_package(message: bytes) -> None:
    fast = fast_from_domain(message)
    if fast is not UNDECIDED:
        assert fast == parsed_from_domain(message)
    assert from_domain(message) == parsed_from_domain(message)


@settings(max_examples=examples(500), deadline=None)
@given(st.from_regex(r"\A[A-Za-z0-9 ]{0,12}\Z"), st.from_regex(r"\A[a-z0-9.+-]{1,10}\Z"),
       st.from_regex(r"\A[a-zA-Z0-9.-]{1,20}\Z"))
def test_named_addresses_agree(name: str, local: str, domain: str) -> None:
    message = f"From: {name} <{local}@{domain}>\r\nTo: x@y.test\r\n\r\n".encode()
    fast = fast_from_domain(message)
    if fast is not UNDECIDED:
        assert fast == parsed_from_domain(message)


@settings(max_examples=examples(1500), deadline=None)
@given(from_values(), st.sampled_from(["", "To: x@y.test\r\n", "Subject: Hallo\r\n"]))
def test_single_from_fields_agree(value: str, other: str) -> None:
    message = f"{other}From:{value}\r\n{other}\r\nbody".encode()
    fast = fast_from_domain(message)
    if fast is not UNDECIDED:
        assert fast == parsed_from_domain(message)
