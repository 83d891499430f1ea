"""SEARCH evaluation (RFC 3501 / RFC 9051 6.4.4, RFC 7162 3.1.5, RFC 5182)
and ESEARCH results (RFC 4731): a set-algebra model of the non-text keys,
decoded header and body text search on real-shaped messages."""

from __future__ import annotations

import datetime
import email.charset
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailserver.imap.fetching import MessageRecord, ParsedMessageCache
from mailserver.imap.searching import (
    SearchContext,
    decode_header_value,
    esearch_result,
    matches,
    needs_body,
)
from mailserver.imap.wire import parse_line
from mailserver.imap.wire.responses import ESearchData
from mailserver.imap.wire.search import (
    FLAG_KEYS,
    SearchAnd,
    SearchDate,
    SearchFlagKey,
    SearchHeader,
    SearchKey,
    SearchKeyword,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSequence,
    SearchSize,
    SearchText,
)
from mailserver.imap.wire.sequence import SequenceSet
from mailserver.imap.wire.serializer import serialize_response
from tests.support.properties import examples

MESSAGES = Path(__file__).parent / "messages"
UTC = datetime.UTC


def message(name: str) -> bytes:
    return (MESSAGES / f"{name}.eml").read_bytes().replace(b"\r\n", b"\n").replace(
        b"\n", b"\r\n")


def search_key(command: bytes) -> SearchKey:
    """The key tree the wire parser makes of ``SEARCH ...`` (literal-aware)."""
    return parse_line(b"a SEARCH " + command + b"\r\n").key


def utf8(text: str) -> bytes:
    """A UTF-8 literal for ``SEARCH CHARSET UTF-8`` strings."""
    data = text.encode("utf-8")
    return b"{%d}\r\n" % len(data) + data


def context(raw: bytes, *, flags: tuple[str, ...] = (), internal: datetime.datetime | None = None,
            loads: list[int] | None = None) -> SearchContext:
    def load() -> bytes:
        if loads is not None:
            loads.append(1)
        return raw

    record = MessageRecord(seq=1, uid=10, flags=frozenset(flags),
                           internal_date=internal or datetime.datetime(2026, 3, 1, tzinfo=UTC),
                           size=len(raw), modseq=5)
    return SearchContext(record, max_seq=1, max_uid=10, load_body=load)


def finds(name: str, command: bytes, **kwargs) -> bool:
    return matches(search_key(command), context(message(name), **kwargs))


# --- a set-algebra model of the non-text keys -------------------------------

SYSTEM = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
KEYWORDS = ("Homework", "$Forwarded", "urgent")


@st.composite
def mailboxes(draw):
    count = draw(st.integers(1, 8))
    uids, uid = [], 0
    for _ in range(count):
        uid += draw(st.integers(1, 4))
        uids.append(uid)
    records = []
    for seq, uid in enumerate(uids, start=1):
        zone = datetime.timezone(datetime.timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60))))
        moment = draw(st.datetimes(min_value=datetime.datetime(2026, 2, 26),
                                   max_value=datetime.datetime(2026, 3, 4)))
        records.append(MessageRecord(
            seq=seq, uid=uid,
            flags=frozenset(draw(st.lists(st.sampled_from(SYSTEM + KEYWORDS), max_size=4))),
            internal_date=moment.replace(tzinfo=zone),
            size=draw(st.integers(0, 60)),
            modseq=draw(st.integers(1, 30)),
        ))
    saved = frozenset(draw(st.lists(st.integers(1, 40), max_size=5)))
    recent = frozenset(draw(st.lists(st.sampled_from(uids), max_size=3)))
    return records, saved, recent


small = st.integers(1, 40)
ends = st.one_of(small, st.none())
sets = st.one_of(
    st.lists(st.tuples(ends, ends), min_size=1, max_size=3).map(
        lambda ranges: SequenceSet(tuple(ranges))),
    st.just(SequenceSet.saved_result()))
day = st.dates(min_value=datetime.date(2026, 2, 25), max_value=datetime.date(2026, 3, 5))
leaves = st.one_of(
    st.builds(SearchFlagKey, st.sampled_from(sorted(FLAG_KEYS))),
    st.builds(SearchKeyword, st.sampled_from((*KEYWORDS, "HOMEWORK", "absent")), st.booleans()),
    st.builds(SearchSize, st.sampled_from(["LARGER", "SMALLER"]), st.integers(0, 60)),
    st.builds(SearchSequence, sets, st.booleans()),
    st.builds(SearchModSeq, st.integers(1, 30)),
    st.builds(SearchDate, st.sampled_from(["BEFORE", "ON", "SINCE"]), day),
)
trees = st.recursive(leaves, lambda inner: st.one_of(
    st.builds(SearchNot, inner),
    st.builds(SearchOr, inner, inner),
    st.lists(inner, min_size=1, max_size=4).map(lambda keys: SearchAnd(tuple(keys))),
), max_leaves=12)


def model(key: SearchKey, records: list[MessageRecord], saved: frozenset[int],
          recent: frozenset[int]) -> set[int]:
    """The sequence numbers matching ``key``, computed as set algebra over
    the whole mailbox straight from RFC 3501 6.4.4's wording."""
    everything = {rec.seq for rec in records}

    def where(test) -> set[int]:
        return {rec.seq for rec in records if test(rec)}

    def has(rec: MessageRecord, flag: str) -> bool:
        return flag.lower() in {f.lower() for f in rec.flags}

    def numbers(sequence_set: SequenceSet, largest: int) -> set[int]:
        out: set[int] = set()
        for first, last in sequence_set.ranges:
            a = largest if first is None else first
            b = largest if last is None else last
            out |= set(range(min(a, b), max(a, b) + 1))
        return out

    def utc_day(rec: MessageRecord) -> datetime.date:
        return (rec.internal_date.replace(tzinfo=None) - rec.internal_date.utcoffset()).date()

    match key:
        case SearchFlagKey("ALL"):
            return everything
        case SearchFlagKey("RECENT"):
            return where(lambda rec: rec.uid in recent)
        case SearchFlagKey("OLD"):
            return everything - model(SearchFlagKey("RECENT"), records, saved, recent)
        case SearchFlagKey("NEW"):
            return (model(SearchFlagKey("RECENT"), records, saved, recent)
                    & model(SearchFlagKey("UNSEEN"), records, saved, recent))
        case SearchFlagKey(name) if name.startswith("UN"):
            return everything - model(SearchFlagKey(name[2:]), records, saved, recent)
        case SearchFlagKey(name):
            return where(lambda rec: has(rec, "\\" + name))
        case SearchKeyword(keyword, negated):
            hit = where(lambda rec: has(rec, keyword))
            return everything - hit if negated else hit
        case SearchSize("LARGER", size):
            return where(lambda rec: rec.size > size)
        case SearchSize(_, size):
            return where(lambda rec: rec.size < size)
        case SearchSequence(sequence_set, _) if sequence_set.saved:
            return where(lambda rec: rec.uid in saved)
        case SearchSequence(sequence_set, True):
            uids = numbers(sequence_set, max(rec.uid for rec in records))
            return where(lambda rec: rec.uid in uids)
        case SearchSequence(sequence_set, False):
            return numbers(sequence_set, len(records)) & everything
        case SearchModSeq(modseq, _):
            return where(lambda rec: rec.modseq >= modseq)
        case SearchDate("BEFORE", date):
            return where(lambda rec: utc_day(rec) < date)
        case SearchDate("ON", date):
            return where(lambda rec: utc_day(rec) == date)
        case SearchDate("SINCE", date):
            return where(lambda rec: utc_day(rec) >= date)
        case SearchNot(inner):
            return everything - model(inner, records, saved, recent)
        case SearchOr(left, right):
            return model(left, records, saved, recent) | model(right, records, saved, recent)
        case SearchAnd(keys):
            result = everything
            for inner in keys:
                result &= model(inner, records, saved, recent)
            return result
    raise AssertionError(key)


def never_load() -> bytes:
    raise AssertionError("a key without text loaded the body")


@settings(max_examples=examples(600))
@given(box=mailboxes(), key=trees)
def test_matches_the_model(box, key: SearchKey) -> None:
    records, saved, recent = box
    found = {
        rec.seq for rec in records
        if matches(key, SearchContext(rec, max_seq=len(records), max_uid=records[-1].uid,
                                      saved_uids=saved, load_body=never_load,
                                      recent=rec.uid in recent))
    }
    assert found == model(key, records, saved, recent)
    assert needs_body(key) is False


text_leaves = st.one_of(
    st.builds(SearchText, st.sampled_from(["BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"]),
              st.text(max_size=6)),
    st.builds(SearchHeader, st.sampled_from(["Subject", "x-none", "DATE", ""]),
              st.text(max_size=6)),
    st.builds(SearchDate, st.sampled_from(["SENTBEFORE", "SENTON", "SENTSINCE"]), day),
)
any_trees = st.recursive(st.one_of(leaves, text_leaves), lambda inner: st.one_of(
    st.builds(SearchNot, inner),
    st.builds(SearchOr, inner, inner),
    st.lists(inner, min_size=1, max_size=4).map(lambda keys: SearchAnd(tuple(keys))),
), max_leaves=10)
NAMES = ("plain", "alternative", "mixed", "nested", "eightbit", "base64", "unknown_cte")
bodies = st.one_of(st.sampled_from(NAMES).map(message), st.binary(max_size=300),
                   st.text(max_size=300).map(lambda t: t.encode("utf-8")))


@settings(max_examples=examples(300))
@given(key=any_trees, raw=bodies, flags=st.lists(st.sampled_from(SYSTEM + KEYWORDS)))
def test_never_raises_and_loads_at_most_once(key: SearchKey, raw: bytes, flags) -> None:
    loads: list[int] = []
    ctx = context(raw, flags=tuple(flags), loads=loads)
    assert matches(key, ctx) in (True, False)
    assert len(loads) <= 1
    if not needs_body(key):
        assert loads == []


@given(key=trees, text=text_leaves, where=st.integers(0, 3))
def test_needs_body_sees_text_keys_anywhere(key: SearchKey, text: SearchKey, where: int) -> None:
    wrapped = [SearchNot(text), SearchOr(key, text), SearchAnd((key, text)),
               SearchOr(text, SearchNot(key))][where]
    assert needs_body(wrapped) is True
    assert needs_body(SearchAnd((key, key))) is False


def test_cheap_keys_spare_the_body() -> None:
    loads: list[int] = []
    raw = message("alternative")
    key = search_key(b"SUBJECT Klassenzimmer SEEN")  # SEEN fails first
    assert matches(key, context(raw, loads=loads)) is False and loads == []
    assert matches(search_key(b"OR SUBJECT x UNSEEN"), context(raw, loads=loads)) is True
    assert loads == []
    assert matches(key, context(raw, flags=("\\Seen",), loads=loads)) is True and loads == [1]


def test_body_shared_through_cache() -> None:
    raw = message("mixed")
    cache = ParsedMessageCache()
    record = MessageRecord(1, 1, frozenset(), datetime.datetime(2026, 3, 1, tzinfo=UTC),
                           len(raw), 1, blob_id="b1")
    first = SearchContext(record, 1, 1, load_body=lambda: raw, cache=cache)
    assert matches(search_key(b"BODY letter"), first)
    second = SearchContext(record, 1, 1, load_body=lambda: raw, cache=cache)
    assert second.message() is first.message() and len(cache) == 1


def test_missing_loader_is_a_programming_error() -> None:
    ctx = SearchContext(context(b"x").record, 1, 10)
    with pytest.raises(ValueError, match="body"):
        matches(SearchText("BODY", "x"), ctx)


# --- flags and recent ----------------------------------------------------------

@pytest.mark.parametrize(("command", "flags", "recent", "expected"), [
    (b"RECENT", (), False, False),
    (b"NEW", (), False, False),
    (b"OLD", (), False, True),
    (b"NEW", (), True, True),
    (b"NEW", ("\\Seen",), True, False),
    (b"KEYWORD homework", ("Homework",), False, True),
    (b"UNKEYWORD homework", ("Homework",), False, False),
    (b"DELETED", ("\\deleted",), False, True),
    (b"UNDRAFT", ("\\Draft",), False, False),
])
def test_flag_keys(command: bytes, flags, recent: bool, expected: bool) -> None:
    ctx = context(b"x", flags=flags)
    ctx.recent = recent
    assert matches(search_key(command), ctx) is expected


# --- decoded header search (RFC 2047) ----------------------------------------

@pytest.mark.parametrize(("name", "command", "expected"), [
    ("alternative", b"CHARSET UTF-8 SUBJECT " + utf8("Müll"), True),
    ("alternative", b"CHARSET UTF-8 SUBJECT " + utf8("MÜLLTRENNUNG im"), True),  # words joined
    ("alternative", b"SUBJECT M=C3=BCll", False),  # the encoded form is not the text
    ("alternative", b"CHARSET UTF-8 FROM " + utf8("jürgen müller"), True),
    ("alternative", b"FROM juergen@schule.example", True),
    ("alternative", b"TO 7b@schule", True),
    ("alternative", b"CC 7b", False),
    ("plain", b"CC klensin", True),
    ("plain", b"BCC klensin", False),
    ("eightbit", b"CHARSET UTF-8 SUBJECT " + utf8("übung"), True),  # raw UTF-8 header
    ("eightbit", b"CHARSET UTF-8 FROM " + utf8("SCHÜLER"), True),
    ("nested", b"CHARSET UTF-8 SUBJECT " + utf8("Bestätigung"), False),  # inner message
    ("nested", b"CHARSET UTF-8 TEXT " + utf8("Bestätigung"), True),  # ... is body text
    ("nested", b"CHARSET UTF-8 BODY " + utf8("bestätigung ausflug"), True),
    ("alternative", b"CHARSET UTF-8 HEADER Subject " + utf8("müll"), True),
    ("alternative", b'HEADER message-id ""', True),  # empty: the field exists
    ("alternative", b'HEADER X-Spam ""', False),
    ("mixed", b"HEADER content-type MIX", True),
    ("mixed", b"TEXT sekretariat", True),
    ("mixed", b"BODY sekretariat", False),
])
def test_header_search(name: str, command: bytes, expected: bool) -> None:
    assert finds(name, command) is expected


@pytest.mark.parametrize(("raw", "expected"), [
    (b"=?utf-8?q?M=C3=BCll?=", "Müll"),
    (b"=?UTF-8?B?TcO8bGw=?=", "Müll"),
    (b"=?utf-8?b?TcO8bGw?=", "Müll"),  # missing padding
    (b"=?iso-8859-1?q?Gr=FC=DFe?= aus =?utf-8?q?K=C3=B6ln?=", "Grüße aus Köln"),
    (b"=?utf-8?q?M=C3?= =?utf-8?q?=BCll?=", "Müll"),  # a character split across words
    (b"=?utf-8*de?q?Stra=C3=9Fe?=", "Straße"),  # RFC 2231 language suffix
    (b"=?x-unknown?q?plain?=", "plain"),
    (b"=?utf-8?q?a?=\r\n =?utf-8?q?_b?=", "a b"),  # folded, whitespace between words dropped
    (b"Re: =?utf-8?x?bad?= ok", "Re: =?utf-8?x?bad?= ok"),
    (b"caf\xc3\xa9", "café"),
    (b"caf\xe9", "café"),  # not UTF-8: Latin-1
])
def test_decode_header_value(raw: bytes, expected: str) -> None:
    assert decode_header_value(raw) == expected


@given(st.binary(max_size=80))
def test_decode_header_value_never_raises(raw: bytes) -> None:
    assert isinstance(decode_header_value(raw), str)


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30),
       st.sampled_from(["utf-8", "iso-8859-1", "utf-16"]), st.sampled_from(["q", "b"]))
def test_decode_header_value_round_trips_encoded_words(text: str, charset: str,
                                                       encoding: str) -> None:
    # The standard library's encoder is the independent side of the round trip.
    codec = email.charset.Charset(charset)
    codec.header_encoding = email.charset.QP if encoding == "q" else email.charset.BASE64
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        return
    word = codec.header_encode(text)
    assert decode_header_value(b"Re: " + word.encode("ascii")) == "Re: " + text


# --- decoded body search ---------------------------------------------------------

@pytest.mark.parametrize(("name", "command", "expected"), [
    ("alternative", b"CHARSET UTF-8 BODY " + utf8("Restmüll. Danke"), True),  # QP, soft break
    ("alternative", b"BODY M=C3=BCll", False),
    ("mixed", b"CHARSET UTF-8 BODY " + utf8("GRÜSSE aus köln"), True),  # casefold: ß = SS
    ("mixed", b"CHARSET UTF-8 BODY " + utf8("grüße AUS köln: straße"), True),  # latin-1 base64
    ("mixed", b"BODY Zeugnisgeheimnis", False),  # inside the PDF: not searched
    ("mixed", b"BODY letter", True),
    ("nested", b"CHARSET UTF-8 BODY " + utf8("Haupteingang. Grüße"), True),  # inner QP latin-1
    ("nested", b"BODY busunternehmen", True),  # the attached message's header
    ("eightbit", b"CHARSET UTF-8 BODY " + utf8("größenordnung"), True),
    ("base64", b"CHARSET UTF-8 BODY " + utf8("käsespätzle"), True),
    ("base64", b"BODY SGV1dGU", False),  # the base64 text itself is not the body
    ("unknown_cte", b"BODY begin", True),  # undecodable: searched as written
    ("plain", b"TEXT tomorrow", True),
    ("plain", b"NOT BODY tomorrow", False),
])
def test_body_search(name: str, command: bytes, expected: bool) -> None:
    assert finds(name, command) is expected


# --- dates -----------------------------------------------------------------------

@pytest.mark.parametrize(("name", "command", "expected"), [
    ("alternative", b"SENTON 2-Mar-2026", True),
    ("mixed", b"SENTON 3-Mar-2026", True),  # 23:30 -0500 is 4 March in UTC: the written date
    ("mixed", b"SENTBEFORE 3-Mar-2026", False),
    ("mixed", b"SENTBEFORE 4-Mar-2026", True),
    ("mixed", b"SENTSINCE 3-Mar-2026", True),
    ("mixed", b"SENTSINCE 4-Mar-2026", False),
    ("plain", b"SENTON 17-Jul-1996", True),  # "(PDT)" comment tolerated
    ("unknown_cte", b"SENTON 1-Jan-2026", False),
    ("unknown_cte", b"SENTBEFORE 1-Jan-2100", False),
    ("unknown_cte", b"SENTSINCE 1-Jan-1900", False),
    ("unknown_cte", b"NOT SENTSINCE 1-Jan-1900", True),
])
def test_sent_dates(name: str, command: bytes, expected: bool) -> None:
    assert finds(name, command) is expected


@pytest.mark.parametrize(("command", "expected"), [
    (b"ON 4-Mar-2026", True), (b"ON 3-Mar-2026", False),
    (b"BEFORE 4-Mar-2026", False), (b"BEFORE 5-Mar-2026", True),
    (b"SINCE 4-Mar-2026", True), (b"SINCE 5-Mar-2026", False),
])
def test_internal_date_compares_in_utc(command: bytes, expected: bool) -> None:
    late = datetime.datetime(2026, 3, 3, 23, 30, tzinfo=datetime.timezone(
        datetime.timedelta(hours=-5)))
    loads: list[int] = []
    assert finds("plain", command, internal=late, loads=loads) is expected
    assert loads == []


# --- sequence sets, UID, $, MODSEQ --------------------------------------------

def test_sets_star_and_saved() -> None:
    record = MessageRecord(4, 17, frozenset(), datetime.datetime(2026, 3, 1, tzinfo=UTC), 5, 9)

    def ctx(saved=frozenset()) -> SearchContext:
        return SearchContext(record, max_seq=4, max_uid=17, saved_uids=saved)

    assert matches(search_key(b"4"), ctx()) and matches(search_key(b"*"), ctx())
    assert matches(search_key(b"9:3"), ctx()) and not matches(search_key(b"1:3"), ctx())
    assert matches(search_key(b"UID 17"), ctx()) and matches(search_key(b"UID 20:*"), ctx())
    assert not matches(search_key(b"UID 4"), ctx())
    assert matches(search_key(b"UID $"), ctx({17})) and matches(search_key(b"$"), ctx({17}))
    assert not matches(search_key(b"$"), ctx({4}))
    assert matches(search_key(b"MODSEQ 9"), ctx()) and not matches(search_key(b"MODSEQ 10"), ctx())
    assert matches(search_key(b'MODSEQ "/flags/\\\\draft" all 9'), ctx())
    assert matches(search_key(b"LARGER 4 SMALLER 6"), ctx())
    assert not matches(search_key(b"OR LARGER 5 SMALLER 5"), ctx())


# --- ESEARCH ---------------------------------------------------------------------------

def test_esearch_all_options() -> None:
    outcome = esearch_result([9, 2, 3, 4, 7, 3], ("MIN", "MAX", "COUNT", "ALL"), tag="a",
                             uid=True)
    assert outcome.saved is None
    assert outcome.response == ESearchData(tag="a", uid=True, min=2, max=9,
                                           all=SequenceSet(((2, 4), (7, 7), (9, 9))), count=5)
    assert serialize_response(outcome.response) == (
        b'* ESEARCH (TAG "a") UID MIN 2 MAX 9 COUNT 5 ALL 2:4,7,9\r\n')


def test_esearch_empty_and_defaults() -> None:
    empty = esearch_result([], ("MIN", "MAX", "COUNT", "ALL"), tag="t")
    assert empty.response == ESearchData(tag="t", count=0)  # RFC 4731 3.1: only COUNT
    assert esearch_result([5, 6], ()).response.all == SequenceSet(((5, 6),))  # RETURN () = ALL
    assert esearch_result([5, 6], ("count",)).response == ESearchData(tag=None, count=2)
    with pytest.raises(ValueError, match="PARTIAL"):
        esearch_result([1], ("PARTIAL",))


@pytest.mark.parametrize(("options", "response", "saved"), [
    (("SAVE",), False, (2, 5, 8)),
    (("SAVE", "MIN"), True, (2,)),
    (("SAVE", "MAX"), True, (8,)),
    (("SAVE", "MIN", "MAX"), True, (2, 8)),
    (("SAVE", "COUNT"), True, (2, 5, 8)),
    (("SAVE", "MIN", "ALL"), True, (2, 5, 8)),
    (("MIN",), True, None),
])
def test_esearch_save(options, response: bool, saved) -> None:
    outcome = esearch_result([8, 2, 5], options)
    assert (outcome.response is not None) is response
    assert outcome.saved == saved


def test_esearch_modseq_only_with_results() -> None:
    assert esearch_result([1], ("ALL",), modseq=77).response.modseq == 77
    assert esearch_result([], ("ALL",), modseq=77).response.modseq is None


@given(st.sets(st.integers(1, 300), max_size=40),
       st.sets(st.sampled_from(["MIN", "MAX", "COUNT", "ALL", "SAVE"])))
def test_esearch_property(numbers: set[int], options: set[str]) -> None:
    outcome = esearch_result(numbers, options)
    wanted = (options - {"SAVE"}) or ({"ALL"} if not options else set())
    if not wanted:
        assert outcome.response is None
        return
    response = outcome.response
    assert (response.count is not None) is ("COUNT" in wanted)
    if "COUNT" in wanted:
        assert response.count == len(numbers)
    if "ALL" in wanted and numbers:
        expanded = response.all.expand(max(numbers))
        assert expanded == sorted(numbers)
        # compressed: no two ranges touch
        bounds = sorted(response.all.ranges)
        assert all(b[0] > a[1] + 1 for a, b in itertools.pairwise(bounds))
    if "MIN" in wanted:
        assert response.min == (min(numbers) if numbers else None)
    if "MAX" in wanted:
        assert response.max == (max(numbers) if numbers else None)


@pytest.mark.parametrize(("header", "query"), [
    (b'"Real Name" <user@domain.example>', b'"Real Name <user@domain.example>"'),
    (b"user@domain.example (Real Name)", b'"Real Name <user@domain.example>"'),
    (b"user@domain.example (Real Name)", b'"Real Name"'),
    (b'=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@schule.example>',
     utf8("Jürgen Müller <jm@schule.example>")),
    (b'"M\\"uller, Jo" <jo@schule.example>', b'"M\\"uller, Jo <jo@schule.example>"'),
    (b"Kollegium: a@schule.example, \"Bea B\" <b@schule.example>;", b'"Bea B <b@"'),
    (b"Real\r\n Name <user@domain.example>", b'"Real Name <user@domain.example>"'),
])
def test_from_matches_every_address_form(header: bytes, query: bytes) -> None:
    """RFC 3501 6.4.4 / RFC 9051 6.4.4 FROM, TO, CC, BCC: the string is
    looked for in the address as the envelope has it, so a display name in
    quotes, in a comment, as encoded words, folded, or in a group matches as
    ``Name <mailbox@host>`` too (issue 14)."""
    raw = b"From: " + header + b"\r\nCc: " + header + b"\r\nSubject: s\r\n\r\nbody\r\n"
    charset = b"CHARSET UTF-8 " if b"{" in query else b""
    assert matches(search_key(charset + b"FROM " + query), context(raw))
    assert matches(search_key(charset + b"CC " + query), context(raw))
    assert not matches(search_key(charset + b"TO " + query), context(raw))
