"""FETCH evaluation (RFC 3501 6.4.5, RFC 9051 6.4.5 / 7.5.2, RFC 3516,
RFC 7162 3.1.4.1) on real-shaped messages, through the wire parser and
serializer so the response is what a client would read."""

from __future__ import annotations

import base64
import datetime
import email
import email.utils
import quopri
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailserver.imap import fetching
from mailserver.imap.fetching import (
    FetchResult,
    MessageRecord,
    ParsedMessageCache,
    UnknownCte,
    UnsupportedFetchItem,
    fetch_response_items,
    needs_body,
    sets_seen,
)
from mailserver.imap.mime import MultiPart, SinglePart, UnknownTransferEncoding
from mailserver.imap.wire import parse_line
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.fetch_items import FetchItem
from mailserver.imap.wire.serializer import serialize_response

MESSAGES = Path(__file__).parent / "messages"
NAMES = ("plain", "alternative", "mixed", "nested", "eightbit", "base64", "unknown_cte")
PDT = datetime.timezone(datetime.timedelta(hours=-7))


def message(name: str) -> bytes:
    # Stored with CRLF; normalise in case a checkout rewrote line ends.
    return (MESSAGES / f"{name}.eml").read_bytes().replace(b"\r\n", b"\n").replace(
        b"\n", b"\r\n")


def record(raw: bytes = b"", *, flags: tuple[str, ...] = (), blob_id: str | None = None,
           seq: int = 3, uid: int = 42) -> MessageRecord:
    return MessageRecord(seq=seq, uid=uid, flags=frozenset(flags),
                         internal_date=datetime.datetime(1996, 7, 17, 2, 44, 25, tzinfo=PDT),
                         size=len(raw), modseq=12345, blob_id=blob_id)


def attributes(text: str) -> tuple:
    return parse_line(b"a FETCH 1 " + text.encode("ascii") + b"\r\n").attributes


def fetch(source: str | bytes, text: str, *, flags: tuple[str, ...] = (),
          **kwargs) -> FetchResult:
    raw = message(source) if isinstance(source, str) else source
    return fetch_response_items(attributes(text), record(raw, flags=flags), raw, **kwargs)


def wire(result: FetchResult, seq: int = 3) -> bytes:
    return serialize_response(r.FetchData(seq, result.items))


def items_of(result: FetchResult, kind: type) -> list:
    return [item for item in result.items if isinstance(item, kind)]


def one(result: FetchResult, kind: type):
    found = items_of(result, kind)
    assert len(found) == 1, result.items
    return found[0]


def split(raw: bytes) -> tuple[bytes, bytes]:
    end = raw.index(b"\r\n\r\n") + 4
    return raw[:end], raw[end:]


def header_raw(raw: bytes, key: str) -> bytes:
    # The fixtures have unfolded headers: one line per field.
    found = re.search(rb"^" + key.encode() + rb": (.*?)\r$", split(raw)[0], re.M | re.I)
    assert found is not None
    return found.group(1)


def section_data(result: FetchResult, spec: str) -> bytes | None:
    found = [item for item in result.items
             if isinstance(item, r.BodySectionItem) and str(item.section) == spec]
    assert len(found) == 1, (spec, result.items)
    return found[0].data


# --- every item on every message --------------------------------------------

EVERYTHING = ("(FLAGS UID INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY MODSEQ "
              "RFC822 RFC822.HEADER RFC822.TEXT BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] "
              "BODY.PEEK[HEADER.FIELDS (Subject Date)] BODY.PEEK[HEADER.FIELDS.NOT (Subject)] "
              "BODY.PEEK[1] BINARY.PEEK[] BINARY.SIZE[])")
# (type, subtype, number of parts) of each fixture's BODYSTRUCTURE.
SHAPES = {
    "plain": (b"text", b"plain", None),
    "alternative": (None, b"alternative", 2),
    "mixed": (None, b"mixed", 3),
    "nested": (None, b"mixed", 2),
    "eightbit": (b"text", b"plain", None),
    "base64": (b"text", b"plain", None),
    "unknown_cte": (b"text", b"plain", None),
}


@pytest.mark.parametrize("name", NAMES)
def test_every_item(name: str) -> None:
    raw = message(name)
    header, text = split(raw)
    parsed = email.message_from_bytes(raw)
    result = fetch(name, EVERYTHING, flags=("\\Seen", "$Homework"))
    assert not result.sets_seen  # already \Seen
    kinds = [type(item).__name__ for item in result.items]
    assert kinds == ["FlagsItem", "UidItem", "InternalDateItem", "SizeItem", "EnvelopeItem",
                     "BodyStructureItem", "BodyStructureItem", "ModSeqItem", "Rfc822Item",
                     "Rfc822Item", "Rfc822Item", *["BodySectionItem"] * 6, "BinaryItem",
                     "BinarySizeItem"]
    assert one(result, r.FlagsItem).flags == ("\\Seen", "$Homework")
    assert one(result, r.UidItem).uid == 42
    assert one(result, r.SizeItem).size == len(raw)
    rfc822 = {item.name: item.data for item in items_of(result, r.Rfc822Item)}
    assert rfc822 == {"RFC822": raw, "RFC822.HEADER": header, "RFC822.TEXT": text}
    assert section_data(result, "") == raw
    assert section_data(result, "HEADER") == header
    assert section_data(result, "TEXT") == text
    subset = section_data(result, "HEADER.FIELDS (Subject Date)")
    assert subset is not None and subset.endswith(b"\r\n\r\n")
    assert sorted(subset.split(b"\r\n")[:2]) == sorted(
        key.encode() + b": " + header_raw(raw, key) for key in ("Date", "Subject"))
    rest = section_data(result, "HEADER.FIELDS.NOT (Subject)")
    assert rest is not None and b"Subject:" not in rest and b"From:" in rest
    assert one(result, r.BinaryItem).data == raw
    assert one(result, r.BinarySizeItem).size == len(raw)

    envelope = one(result, r.EnvelopeItem).envelope
    assert envelope.subject == header_raw(raw, "Subject")
    assert envelope.date == header_raw(raw, "Date")
    sender = email.utils.parseaddr(str(parsed["From"]))[1]
    assert envelope.from_ is not None and len(envelope.from_) == 1
    assert envelope.from_[0].mailbox + b"@" + envelope.from_[0].host == sender.encode()
    structures = items_of(result, r.BodyStructureItem)
    assert [s.extended for s in structures] == [True, False]
    kind, subtype, parts = SHAPES[name]
    for structure in (s.structure for s in structures):
        assert structure.subtype == subtype
        if parts is None:
            assert isinstance(structure, SinglePart) and structure.type == kind
            assert structure.size == len(text)
        else:
            assert isinstance(structure, MultiPart) and len(structure.parts) == parts

    line = wire(result)
    assert line.startswith(b"* 3 FETCH (FLAGS (\\Seen $Homework) UID 42 ")
    assert b'INTERNALDATE "17-Jul-1996 02:44:25 -0700"' in line
    assert b"RFC822.SIZE %d" % len(raw) in line
    assert b"MODSEQ (12345)" in line
    assert b"BODYSTRUCTURE (" in line and b" BODY (" in line
    assert b"RFC822 {%d}\r\n" % len(raw) + raw in line
    assert line.endswith(b")\r\n")


@pytest.mark.parametrize("name", NAMES)
def test_rfc822_size_equals_octets(name: str) -> None:
    raw = message(name)
    result = fetch(name, "(RFC822.SIZE RFC822)")
    assert one(result, r.SizeItem).size == len(raw) == len(one(result, r.Rfc822Item).data)
    # Without the body the record's size is used (the store keeps len(bytes)).
    lean = fetch_response_items(attributes("RFC822.SIZE"), record(raw), None)
    assert lean.items == (r.SizeItem(len(raw)),)


def test_plain_parts() -> None:
    raw = message("plain")
    result = fetch("plain", "(BODY.PEEK[1] BINARY.PEEK[1] BODY.PEEK[2] BINARY.SIZE[1])")
    _, text = split(raw)
    assert section_data(result, "1") == text  # a single part message has part 1
    assert section_data(result, "2") is None
    assert one(result, r.BinaryItem).data == text
    assert one(result, r.BinarySizeItem).size == len(text)
    assert b"BODY[2] NIL" in wire(result)


def test_alternative_quoted_printable() -> None:
    raw = message("alternative")
    result = fetch("alternative", "(BODY.PEEK[1] BINARY.PEEK[1] BINARY.SIZE[1] BODY.PEEK[2.MIME] "
                   "BODY.PEEK[1.MIME] BINARY.PEEK[2])")
    encoded = section_data(result, "1")
    assert encoded is not None and encoded in raw and b"M=C3=BCll" in encoded
    decoded = items_of(result, r.BinaryItem)[0].data
    assert decoded == quopri.decodestring(encoded)
    assert "Restmüll. Danke!" in decoded.decode("utf-8")
    assert one(result, r.BinarySizeItem).size == len(decoded)
    assert section_data(result, "1.MIME") == (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
    assert section_data(result, "2.MIME").startswith(b"Content-Type: text/html")
    assert items_of(result, r.BinaryItem)[1].data == b"<p>Liebe Klasse, bitte trennt den " \
        b"<b>M\xc3\xbcll</b>.</p>"


def test_mixed_attachment_base64() -> None:
    result = fetch("mixed", "(BINARY.PEEK[2] BINARY.PEEK[3] BODY.PEEK[2] BODY.PEEK[4] "
                   "BINARY.PEEK[4] BINARY.SIZE[2] BODY.PEEK[3.MIME] BODYSTRUCTURE)")
    pdf = items_of(result, r.BinaryItem)[0].data
    assert pdf.startswith(b"%PDF-1.4\n\x00") and base64.b64decode(section_data(result, "2")) == pdf
    assert one(result, r.BinarySizeItem).size == len(pdf)
    assert items_of(result, r.BinaryItem)[1].data == "Grüße aus Köln: Straße".encode("latin-1")
    assert section_data(result, "4") is None and items_of(result, r.BinaryItem)[2].data is None
    assert b'filename="gruss.txt"' in section_data(result, "3.MIME")
    structure = one(result, r.BodyStructureItem).structure
    attachment = structure.parts[1]
    assert (attachment.type, attachment.subtype, attachment.encoding) == (
        b"application", b"pdf", b"base64")
    assert attachment.extension.disposition.kind == b"attachment"
    line = wire(result)
    # NUL in BINARY data needs literal8 (RFC 3516 4.2).
    assert b"BINARY[2] ~{%d}\r\n" % len(pdf) + pdf in line


def test_nested_message_rfc822() -> None:
    raw = message("nested")
    result = fetch("nested", "(BODY.PEEK[2] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] "
                   "BODY.PEEK[2.1] BODY.PEEK[2.1.MIME] BINARY.PEEK[2.1] BODY.PEEK[2.2] "
                   "BODY.PEEK[2.HEADER.FIELDS (SUBJECT)] BODY.PEEK[2.3] BODYSTRUCTURE)")
    inner = section_data(result, "2")
    assert inner is not None and inner.startswith(b"Date: Tue, 03 Mar 2026") and inner in raw
    inner_header, inner_text = split(inner)
    assert section_data(result, "2.HEADER") == inner_header
    assert section_data(result, "2.TEXT") == inner_text
    assert section_data(result, "2.HEADER.FIELDS (SUBJECT)") == (
        b"Subject: =?iso-8859-1?q?Best=E4tigung_Ausflug?=\r\n\r\n")
    assert section_data(result, "2.1") == b"Abfahrt um 8 Uhr am Haupteingang. Gr=FC=DFe"
    assert section_data(result, "2.1.MIME").startswith(b"Content-Type: text/plain")
    assert section_data(result, "2.2") == b"<p>Abfahrt um 8 Uhr</p>"
    assert section_data(result, "2.3") is None
    assert one(result, r.BinaryItem).data == "Abfahrt um 8 Uhr am Haupteingang. Grüße".encode(
        "latin-1")
    attached = one(result, r.BodyStructureItem).structure.parts[1]
    assert (attached.type, attached.subtype) == (b"message", b"rfc822")
    assert attached.envelope.subject == b"=?iso-8859-1?q?Best=E4tigung_Ausflug?="
    assert isinstance(attached.body, MultiPart) and attached.body.subtype == b"alternative"


def test_eight_bit_body_is_a_literal() -> None:
    result = fetch("eightbit", "(BODY.PEEK[1] ENVELOPE)")
    body = section_data(result, "1")
    assert body == "Die Übung zur Größenordnung ist fertig.\r\n".encode()
    line = wire(result)
    assert b"BODY[1] {%d}\r\n" % len(body) + body in line
    assert one(result, r.EnvelopeItem).envelope.subject == "Hausaufgabe Übung".encode()


def test_base64_text_binary() -> None:
    result = fetch("base64", "(BINARY.PEEK[1] BINARY.SIZE[1] BODY.PEEK[1])")
    decoded = "Heute: Käsespätzle mit Röstzwiebeln".encode("latin-1")
    assert one(result, r.BinaryItem).data == decoded
    assert one(result, r.BinarySizeItem).size == len(decoded)
    assert base64.b64decode(section_data(result, "1")) == decoded


@pytest.mark.parametrize("text", ["BINARY.PEEK[1]", "BINARY.SIZE[1]", "BINARY[1]<0.3>"])
def test_unknown_cte_is_typed(text: str) -> None:
    with pytest.raises(UnknownCte) as raised:
        fetch("unknown_cte", text)
    assert raised.value.part == (1,) and raised.value.encoding == "x-uuencode"
    assert isinstance(raised.value, UnknownTransferEncoding)
    # BODY[] of the same part does not decode and still works.
    assert section_data(fetch("unknown_cte", "BODY.PEEK[1]"), "1").startswith(b"begin 644")


# --- \Seen ------------------------------------------------------------------

@pytest.mark.parametrize(("text", "flags", "read_only", "expected"), [
    ("BODY[]", (), False, True),
    ("BODY.PEEK[]", (), False, False),
    ("BODY[TEXT]", (), False, True),
    ("BODY[HEADER]", (), False, True),
    ("BODY[1]<0.10>", (), False, True),
    ("BODY.PEEK[1]<0.10>", (), False, False),
    ("RFC822", (), False, True),
    ("RFC822.TEXT", (), False, True),
    ("RFC822.HEADER", (), False, False),
    ("RFC822.SIZE", (), False, False),
    ("BINARY[1]", (), False, True),
    ("BINARY.PEEK[1]", (), False, False),
    ("BINARY.SIZE[1]", (), False, False),
    ("(ENVELOPE BODYSTRUCTURE BODY FLAGS)", (), False, False),
    ("(FLAGS BODY.PEEK[] BODY[TEXT])", (), False, True),
    ("BODY[]", ("\\Seen",), False, False),
    ("BODY[]", ("\\seen",), False, False),  # flags compare case-insensitively
    ("RFC822", ("\\Flagged",), False, True),
    ("BODY[]", (), True, False),  # EXAMINE: read-only
    ("BINARY[1]", (), True, False),
])
def test_seen_table(text: str, flags: tuple[str, ...], read_only: bool, expected: bool) -> None:
    result = fetch("plain", text, flags=flags, read_only=read_only)
    assert result.sets_seen is expected
    assert sets_seen(attributes(text), flags, read_only=read_only) is expected
    shown = items_of(result, r.FlagsItem)
    if expected:
        # The implicit change is reported in the same response (RFC 3501 6.4.5).
        assert len(shown) == 1 and "\\Seen" in shown[0].flags
        assert set(shown[0].flags) == set(flags) | {"\\Seen"}
    elif "FLAGS" not in text:
        assert shown == []


def test_with_modseq_after_storing_seen() -> None:
    result = fetch("plain", "(BODY[] MODSEQ)")
    assert one(result, r.ModSeqItem).modseq == 12345
    updated = result.with_modseq(12346)
    assert one(updated, r.ModSeqItem).modseq == 12346 and updated.sets_seen
    assert one(fetch("plain", "BODY[]").with_modseq(7), r.ModSeqItem).modseq == 7


# --- partial fetches ----------------------------------------------------------

@pytest.mark.parametrize(("origin", "count"), [(0, 10), (5, 1), (390, 100)])
def test_partial_boundaries(origin: int, count: int) -> None:
    raw = message("plain")
    result = fetch("plain", f"BODY.PEEK[]<{origin}.{count}>")
    item = one(result, r.BodySectionItem)
    assert item.origin == origin and item.data == raw[origin:origin + count]
    assert b"BODY[]<%d> " % origin in wire(result)


@pytest.mark.parametrize("beyond", [0, 1, 1000])
def test_partial_origin_beyond_size_is_empty(beyond: int) -> None:
    raw = message("plain")
    origin = len(raw) + beyond
    result = fetch("plain", f"(BODY.PEEK[]<{origin}.10> BINARY.PEEK[1]<{origin}.5>)")
    assert one(result, r.BodySectionItem).data == b""  # empty string, not NIL
    assert one(result, r.BinaryItem).data == b""
    assert b'BODY[]<%d> ""' % origin in wire(result)
    assert b'BINARY[1]<%d> ""' % origin in wire(result)


def test_partial_of_missing_part_is_nil() -> None:
    result = fetch("mixed", "(BODY.PEEK[7]<0.10> BINARY.PEEK[7]<0.10> BINARY.SIZE[7])")
    assert one(result, r.BodySectionItem).data is None
    assert one(result, r.BinaryItem).data is None
    assert one(result, r.BinarySizeItem).size == 0


def test_partial_last_octet() -> None:
    raw = message("mixed")
    result = fetch("mixed", f"BODY.PEEK[TEXT]<{len(split(raw)[1]) - 1}.50>")
    assert one(result, r.BodySectionItem).data == raw[-1:]


@given(name=st.sampled_from(NAMES[:-1]), origin=st.integers(0, 1200),
       count=st.integers(1, 1200), spec=st.sampled_from(["", "TEXT", "HEADER", "1"]))
def test_partial_property(name: str, origin: int, count: int, spec: str) -> None:
    whole = section_data(fetch(name, f"BODY.PEEK[{spec}]"), spec)
    cut = one(fetch(name, f"BODY.PEEK[{spec}]<{origin}.{count}>"), r.BodySectionItem)
    assert cut.origin == origin and cut.data == whole[origin:origin + count]
    binary_whole = one(fetch(name, f"BINARY.PEEK[{spec or ''}]"), r.BinaryItem).data \
        if spec in ("", "1") else None
    if binary_whole is not None:
        binary_cut = one(fetch(name, f"BINARY.PEEK[{spec}]<{origin}.{count}>"), r.BinaryItem)
        assert binary_cut.data == binary_whole[origin:origin + count]


# --- UID, needs_body, errors ------------------------------------------------

def test_uid_fetch_always_has_uid() -> None:
    result = fetch("plain", "(FLAGS RFC822.SIZE)", uid_fetch=True)
    assert result.items[0] == r.UidItem(42)
    again = fetch("plain", "(FLAGS UID)", uid_fetch=True)
    assert [type(i) for i in again.items] == [r.FlagsItem, r.UidItem]  # asked: not doubled
    plain = fetch("plain", "(FLAGS RFC822.SIZE)")
    assert items_of(plain, r.UidItem) == []


def test_duplicates_are_answered_once() -> None:
    result = fetch("plain", "(FLAGS FLAGS BODY.PEEK[1] BODY.PEEK[1])")
    assert len(result.items) == 2


@pytest.mark.parametrize(("macro", "kinds"), [
    ("ALL", [r.FlagsItem, r.InternalDateItem, r.SizeItem, r.EnvelopeItem]),
    ("FAST", [r.FlagsItem, r.InternalDateItem, r.SizeItem]),
    ("FULL", [r.FlagsItem, r.InternalDateItem, r.SizeItem, r.EnvelopeItem,
              r.BodyStructureItem]),
])
def test_macros(macro: str, kinds: list[type]) -> None:
    raw = message("alternative")
    parsed = fetch("alternative", macro)  # expanded by the wire parser
    built = fetch_response_items((FetchItem(macro),), record(raw), raw)  # expanded here
    assert [type(item) for item in parsed.items] == kinds
    assert built == parsed
    assert needs_body((FetchItem(macro),)) is (macro != "FAST")
    if macro == "FULL":
        assert parsed.items[-1].extended is False  # FULL has BODY, not BODYSTRUCTURE


@pytest.mark.parametrize(("text", "expected"), [
    ("(FLAGS UID INTERNALDATE RFC822.SIZE MODSEQ)", False),
    ("FAST", False),
    ("ALL", True),
    ("ENVELOPE", True), ("BODY", True), ("BODYSTRUCTURE", True), ("RFC822", True),
    ("RFC822.HEADER", True), ("RFC822.TEXT", True), ("BODY.PEEK[HEADER]", True),
    ("BINARY.SIZE[1]", True), ("BINARY.PEEK[]", True), ("(FLAGS BODY[]<0.1>)", True),
])
def test_needs_body(text: str, expected: bool) -> None:
    assert needs_body(attributes(text)) is expected


def test_record_items_without_body() -> None:
    result = fetch_response_items(attributes("(FLAGS UID INTERNALDATE RFC822.SIZE MODSEQ)"),
                                  record(b"x" * 77, flags=("\\Answered",)), None)
    assert wire(result) == (b'* 3 FETCH (FLAGS (\\Answered) UID 42 INTERNALDATE '
                            b'"17-Jul-1996 02:44:25 -0700" RFC822.SIZE 77 MODSEQ (12345))\r\n')
    with pytest.raises(ValueError, match="body"):
        fetch_response_items(attributes("ENVELOPE"), record(), None)


def test_unsupported_items_are_typed() -> None:
    with pytest.raises(UnsupportedFetchItem):
        fetch_response_items((FetchItem("EMAILID"),), record(b"x"), b"x")


def test_internaldate_other_zones() -> None:
    raw = message("plain")
    when = datetime.datetime(2026, 3, 2, 7, 5, 9, tzinfo=datetime.timezone(
        datetime.timedelta(hours=5, minutes=30)))
    rec = MessageRecord(1, 1, frozenset(), when, len(raw), 1)
    result = fetch_response_items(attributes("INTERNALDATE"), rec, raw)
    assert b'INTERNALDATE " 2-Mar-2026 07:05:09 +0530"' in wire(result)


# --- the parsed-message cache ------------------------------------------------

def test_cache_parses_once_per_blob(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = fetching.parse_entity

    def counting(raw: bytes, *args, **kwargs):
        calls.append(len(raw))
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(fetching, "parse_entity", counting)
    raw = message("nested")
    rec = record(raw, blob_id="blob-nested")
    items = attributes("(ENVELOPE BODYSTRUCTURE BODY BODY.PEEK[1] BODY.PEEK[2.1] BINARY.PEEK[2.1])")
    cache = ParsedMessageCache(entries=2)
    first = fetch_response_items(items, rec, raw, cache=cache)
    second = fetch_response_items(items, rec, raw, cache=cache)
    assert first == second and calls == [len(raw)]
    # Without a cache every FETCH parses again (once per FETCH, not per item).
    fetch_response_items(items, rec, raw)
    assert len(calls) == 2


def test_cache_is_lru_and_bounded() -> None:
    cache = ParsedMessageCache(entries=2, max_bytes=100)
    a = cache.get("a", b"a" * 10)
    cache.get("b", b"b" * 10)
    assert cache.get("a", b"ignored") is a  # hit, now most recent
    cache.get("c", b"c" * 10)  # evicts b
    assert len(cache) == 2 and cache.get("a", b"") is a
    assert cache.get("b", b"B" * 10).raw == b"B" * 10  # b was evicted: fresh
    big = cache.get("big", b"x" * 101)  # larger than max_bytes: not kept
    assert big.raw == b"x" * 101 and cache.get("big", b"y").raw == b"y"
    cache.get("d", b"d" * 60)
    cache.get("e", b"e" * 60)  # 120 bytes > 100: d goes
    assert cache.get("d", b"D").raw == b"D"


# --- the server-wide cache of rendered ENVELOPE / BODYSTRUCTURE items -------------

@pytest.mark.parametrize("name", NAMES)
def test_mime_item_cache_renders_the_same_bytes(name: str) -> None:
    """RFC 3501 7.4.2: a cached ENVELOPE / BODYSTRUCTURE / BODY goes out
    octet for octet as a freshly parsed one, from the body or the header."""
    raw = message(name)
    items = attributes("(UID ENVELOPE BODYSTRUCTURE BODY)")
    cache = fetching.MimeItemCache()
    rec = record(raw, blob_id=f"blob-{name}")
    fresh = wire(fetch_response_items(items, rec, raw))
    assert wire(fetch_response_items(items, rec, raw, items_cache=cache)) == fresh
    assert wire(fetch_response_items(items, rec, raw, items_cache=cache)) == fresh
    assert cache.hits == 3 and cache.misses == 3
    header_only = attributes("(ENVELOPE)")
    header = fetching.ParsedMessage(raw).header
    assert wire(fetch_response_items(header_only, rec, None, header=header,
                                     items_cache=cache)) == wire(
        fetch_response_items(header_only, rec, raw))


def test_mime_item_cache_parses_once_per_blob(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = fetching.parse_entity

    def counting(raw: bytes, *args, **kwargs):
        calls.append(len(raw))
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(fetching, "parse_entity", counting)
    raw = message("mixed")
    cache = fetching.MimeItemCache()
    items = attributes("(BODYSTRUCTURE)")
    for uid in (1, 2, 3):  # three mailboxes' copies of one blob
        fetch_response_items(items, record(raw, blob_id="one-blob", uid=uid), raw,
                             items_cache=cache)
    assert calls == [len(raw)]
    fetch_response_items(items, record(raw, blob_id="other-blob"), raw, items_cache=cache)
    assert len(calls) == 2


def test_mime_item_cache_is_bounded() -> None:
    raw = message("nested")
    cache = fetching.MimeItemCache(max_bytes=3000)
    items = attributes("(ENVELOPE)")
    for n in range(50):
        fetch_response_items(items, record(raw, blob_id=f"b{n}"), raw, items_cache=cache)
    assert 0 < len(cache) < 50
    fetch_response_items(items, record(raw, blob_id="b49"), raw, items_cache=cache)
    assert cache.hits == 1  # the newest is kept


@pytest.mark.parametrize("name", NAMES)
def test_mime_item_cache_keeps_part_sections_per_blob(name: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 9051 6.4.5: BODY[1], BODY[1.MIME], BODY[2]<0.10> answered from the
    server-wide cache go out octet for octet as freshly parsed ones, and a
    blob is parsed once for all sessions (each has its own ParsedMessage)."""
    raw = message(name)
    items = attributes("(UID BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2]<0.10> BODY[TEXT])")
    fresh = wire(fetch_response_items(items, record(raw), raw))
    calls: list[int] = []
    real = fetching.parse_entity

    def counting(raw: bytes, *args, **kwargs):
        calls.append(len(raw))
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(fetching, "parse_entity", counting)
    cache = fetching.MimeItemCache()
    for uid in (1, 2, 3):  # three sessions' FETCHes of one blob
        rec = record(raw, blob_id="one-blob", uid=uid)
        assert wire(fetch_response_items(items, rec, raw, items_cache=cache)) == wire(
            fetch_response_items(items, record(raw, uid=uid), raw))
    assert wire(fetch_response_items(items, record(raw, blob_id="one-blob"), raw,
                                     items_cache=cache)) == fresh
    assert len(calls) == 1 + 3  # once through the cache, once per uncached answer
    assert cache.misses == 3  # BODY[1], BODY[1.MIME], BODY[2]; BODY[TEXT] needs no parse


def test_mime_item_cache_does_not_keep_big_sections() -> None:
    raw = message("mixed")
    cache = fetching.MimeItemCache(max_section=1)
    items = attributes("(BODY.PEEK[1])")
    for _ in range(2):
        fetch_response_items(items, record(raw, blob_id="b"), raw, items_cache=cache)
    assert cache.hits == 0 and len(cache) == 0
