"""MIME views for FETCH: ENVELOPE / BODYSTRUCTURE (RFC 3501 7.4.2, RFC 9051
7.5.2), BODY[section] (RFC 3501 6.4.5) and BINARY (RFC 3516), on messages
written for these tests, compared with Dovecot-style output worked out by hand
from the RFCs (sizes are octets of the encoded body, the CRLF before a
boundary belongs to the boundary)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailserver.imap.mime import (
    UnknownTransferEncoding,
    binary,
    binary_size,
    bodystructure,
    envelope,
    section,
)
from mailserver.imap.mime.addresses import parse_address_list
from mailserver.imap.mime.types import Address
from mailserver.imap.wire.fetch_items import Section
from mailserver.imap.wire.serializer import body_structure_bytes, envelope_bytes
from tests.support.properties import examples

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> bytes:
    return (FIXTURES / f"{name}.eml").read_bytes()


BODYSTRUCTURES = {
    "plain": b'("text" "plain" ("charset" "US-ASCII") NIL NIL "7bit" 60 2 NIL NIL NIL NIL)',
    "no_content_type": (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 18 2 NIL NIL NIL NIL)'),
    "alternative": (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 34 2 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "8bit" 16 1 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "=_alt") NIL NIL NIL)'),
    "mixed": (
        b'((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 1 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 20 1 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "inner") NIL NIL NIL)'
        b'("application" "pdf" ("name" "blatt 1.pdf") "<blatt1@schule.example>" "Arbeitsblatt"'
        b' "base64" 22 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "blatt 1.pdf"))'
        b' ("de" "en") "http://schule.example/blatt1.pdf")'
        b'("message" "rfc822" NIL NIL NIL "7bit" 321'
        b' (NIL "Re: Ausflug" (("Eltern" NIL "e" "example.net")) (("Eltern" NIL "e" "example.net"))'
        b' (("Eltern" NIL "e" "example.net")) NIL NIL NIL "<x@y>" NIL)'
        b' (("text" "plain" ("charset" "iso-8859-1") NIL NIL "quoted-printable" 9 1'
        b' NIL NIL NIL NIL)'
        b'("image" "png" NIL NIL NIL "x-unknown" 4 NIL NIL NIL NIL)'
        b' "mixed" ("boundary" "deep") NIL NIL NIL) 16 NIL ("inline" NIL) NIL NIL)'
        b' "mixed" ("boundary" "outer") NIL NIL NIL)'),
}


@pytest.mark.parametrize("name", sorted(BODYSTRUCTURES))
def test_bodystructure(name: str) -> None:
    assert body_structure_bytes(bodystructure(load(name))) == BODYSTRUCTURES[name]


def test_body_is_bodystructure_without_extension_data() -> None:
    assert body_structure_bytes(bodystructure(load("alternative"), extended=False), False) == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 34 2)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "8bit" 16 1) "alternative")')
    nested = body_structure_bytes(bodystructure(load("mixed"), extended=False), False)
    assert b'("image" "png" NIL NIL NIL "x-unknown" 4) "mixed") 16) "mixed")' in nested
    assert b'"inline"' not in nested and b"boundary" not in nested


def test_envelopes() -> None:
    assert envelope_bytes(envelope(load("plain"))) == (
        b'("Mon, 7 Feb 1994 21:52:25 -0800" "afternoon meeting"'
        b' (("Fred Foobar" NIL "foobar" "example.org"))'
        b' (("Fred Foobar" NIL "foobar" "example.org"))'
        b' (("Fred Foobar" NIL "foobar" "example.org")) ((NIL NIL "mooch" "example.net"))'
        b' NIL NIL NIL "<plain@example.org>")')
    assert envelope_bytes(envelope(load("mixed"))) == (
        b'(NIL "Hausaufgaben" (("Lehrerin" NIL "l" "schule.example"))'
        b' (("Lehrerin" NIL "l" "schule.example")) (("Lehrerin" NIL "l" "schule.example"))'
        b' ((NIL NIL "Klasse 7a" NIL) (NIL NIL "a" "schule.example") (NIL NIL "b" "schule.example")'
        b' (NIL NIL NIL NIL)) ((NIL NIL "undisclosed-recipients" NIL) (NIL NIL NIL NIL))'
        b' NIL NIL NIL)')


def test_envelope_sender_reply_to_and_raw_values() -> None:
    message = (b"From: a@x.example\r\nSender: s@x.example\r\nReply-To: \r\n"
               b"Subject: =?iso-8859-1?q?Gr=FC=DFe?= \xc3\xa4\r\nBcc: (comment) <@r1,@r2:u@h>\r\n"
               b"\r\nbody")
    env = envelope(message)
    assert env.sender == (Address(None, None, b"s", b"x.example"),)
    assert env.reply_to == env.from_  # empty Reply-To defaults to From
    assert env.subject == b"=?iso-8859-1?q?Gr=FC=DFe?= \xc3\xa4"  # raw, not decoded
    assert env.bcc == (Address(None, b"@r1,@r2", b"u", b"h"),)
    assert envelope_bytes(env).count(b"{") == 1  # the 8-bit subject travels as a literal


@pytest.mark.parametrize(("value", "expected"), [
    (b'"Doe, John" <john@example.com>, jane@example.com (Jane)',
     ((b"Doe, John", None, b"john", b"example.com"), (b"Jane", None, b"jane", b"example.com"))),
    (b"John Q. Public <jqp@x>", ((b"John Q. Public", None, b"jqp", b"x"),)),
    (b'"a b"@example.com', ((None, None, b'"a b"', b"example.com"),)),
    (b"localonly", ((None, None, b"localonly", b"MISSING_DOMAIN"),)),
    (b"G: ;", ((None, None, b"G", None), (None, None, None, None))),
    (b"", None),
])
def test_address_lists(value: bytes, expected) -> None:
    parsed = parse_address_list(value or None)
    assert (None if parsed is None else tuple(
        (a.name, a.adl, a.mailbox, a.host) for a in parsed)) == expected


def test_sections_of_a_nested_message() -> None:
    message = load("mixed")
    header, _, body = message.partition(b"\r\n\r\n")
    assert section(message, Section()) == message
    assert section(message, Section((), "HEADER")) == header + b"\r\n\r\n"
    assert section(message, Section((), "TEXT")) == body
    assert section(message, Section((1,))).startswith(b"--inner\r\nContent-Type: text/plain")
    assert section(message, Section((1, 1))) == b"Siehe Anhang."
    assert section(message, Section((1, 2))) == b"<b>Siehe Anhang.</b>"
    assert section(message, Section((1, 2), "MIME")) == b"Content-Type: text/html\r\n\r\n"
    assert section(message, Section((2,))) == b"JVBERi0xLjQK\r\nJSVFT0YK"
    inner = section(message, Section((3,)))
    assert inner.startswith(b"From: Eltern") and inner.endswith(b"--deep--\r\n")
    assert section(message, Section((3,), "HEADER")).endswith(
        b"Content-Type: multipart/mixed; boundary=deep\r\n\r\n")
    assert section(message, Section((3,), "TEXT")).startswith(b"--deep\r\n")
    assert section(message, Section((3, 1))) == b"Gr=FC=DFe"
    assert section(message, Section((3, 2), "MIME")) == (
        b"Content-Type: image/png\r\nContent-Transfer-Encoding: x-unknown\r\n\r\n")
    assert section(message, Section((3,), "HEADER.FIELDS", ("subject", "IN-REPLY-TO"))) == (
        b"Subject: Re: Ausflug\r\nIn-Reply-To: <x@y>\r\n\r\n")
    # HEADER of a part that is not a message, and parts that do not exist: NIL.
    assert section(message, Section((2,), "HEADER")) is None
    assert section(message, Section((4,))) is None
    assert section(message, Section((2, 1))) is None


def test_header_fields_and_partial() -> None:
    message = load("plain")
    assert section(message, Section((), "HEADER.FIELDS", ("SUBJECT", "to"))) == (
        b"To: mooch@example.net\r\nSubject: afternoon\r\n meeting\r\n\r\n")
    not_fields = section(message, Section((), "HEADER.FIELDS.NOT", ("subject", "date", "to",
                                                                     "message-id")))
    assert not_fields == (b"From: Fred Foobar <foobar@example.org>\r\nMIME-Version: 1.0\r\n"
                          b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n")
    assert section(message, Section((), "HEADER.FIELDS", ("X-Missing",))) == b"\r\n"
    assert section(message, Section((), "TEXT"), (6, 3)) == b"Joe"
    assert section(message, Section((), "TEXT"), (1000, 3)) == b""


def test_single_part_message_is_part_one() -> None:
    message = load("plain")
    text = section(message, Section((), "TEXT"))
    assert section(message, Section((1,))) == text
    assert section(message, Section((2,))) is None
    assert section(message, Section((1, 1))) is None


def test_binary_decodes_transfer_encodings() -> None:
    alternative = load("alternative")
    assert binary(alternative, (1,)) == "Grüße aus der Schule!".encode()
    assert binary(alternative, (2,)) == "<p>Grüße</p>\r\n".encode()
    assert binary_size(alternative, (1,)) == len("Grüße aus der Schule!".encode())
    mixed = load("mixed")
    assert binary(mixed, (2,)) == b"%PDF-1.4\n%%EOF\n"
    assert binary(mixed, (2,), (1, 3)) == b"PDF"
    assert binary(mixed, (3, 1)) == "Grüße".encode("latin-1")
    with pytest.raises(UnknownTransferEncoding):
        binary(mixed, (3, 2))
    assert binary(mixed, (9,)) is None
    assert binary(mixed, ()) == mixed


@settings(max_examples=examples(150), deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 4), max_size=3))
def test_mime_views_never_crash(message: bytes, part: list[int]) -> None:
    # Arbitrary bytes are still "a message": every view gives an answer.
    structure = body_structure_bytes(bodystructure(message))
    assert structure.startswith(b"(")
    envelope_bytes(envelope(message))
    for text in (None, "HEADER", "TEXT", "MIME"):
        if text == "MIME" and not part:
            continue
        section(message, Section(tuple(part), text))
    try:
        binary(message, tuple(part))
    except UnknownTransferEncoding:
        pass


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.binary(max_size=40).filter(lambda b: b"--" not in b), min_size=1,
                max_size=4))
def test_multipart_parts_come_back_exactly(bodies: list[bytes]) -> None:
    message = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n" + b"".join(
        b"--zz\r\nContent-Type: application/octet-stream\r\n\r\n" + body + b"\r\n"
        for body in bodies) + b"--zz--\r\n"
    structure = bodystructure(message)
    assert len(structure.parts) == len(bodies)
    for number, body in enumerate(bodies, 1):
        assert section(message, Section((number,))) == body
        assert structure.parts[number - 1].size == len(body)
