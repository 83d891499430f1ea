"""Response serialization (RFC 9051 7, RFC 3501 7) checked byte for byte
against RFC examples, with an independent client parser (IMAPClient), and
by round trips through a test-side reader."""

from __future__ import annotations

import datetime
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from imapclient.response_parser import parse_fetch_response

from mailserver.imap.mime import bodystructure, envelope
from mailserver.imap.mime.types import Address, Envelope
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.fetch_items import Section
from mailserver.imap.wire.mutf7 import decode_mutf7
from mailserver.imap.wire.sequence import SequenceSet, parse_sequence_set
from mailserver.imap.wire.serializer import serialize_response
from tests.mailserver.imap.response_reader import Atom, read
from tests.mailserver.imap.strategies import sequence_sets, texts
from tests.support.properties import examples

S = serialize_response


def test_status_responses_rfc_examples() -> None:
    assert S(r.Untagged("OK", "UIDs valid", r.NumberCode("UIDVALIDITY", 3857529045))) == (
        b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n")
    assert S(r.Tagged("A142", "OK", "SELECT completed", r.Code("READ-WRITE"))) == (
        b"A142 OK [READ-WRITE] SELECT completed\r\n")
    assert S(r.Untagged("OK", "Limited", r.PermanentFlagsCode(("\\Deleted", "\\Seen", "\\*")))
             ) == b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n"
    assert S(r.Tagged("A003", "OK", "APPEND completed",
                      r.AppendUidCode(38505, SequenceSet.from_numbers([3955])))) == (
        b"A003 OK [APPENDUID 38505 3955] APPEND completed\r\n")
    assert S(r.Tagged("a", "OK", "Done", r.CopyUidCode(
        38505, SequenceSet.from_numbers([304, 319, 320]),
        SequenceSet.from_numbers([3956, 3957, 3958])))) == (
        b"a OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n")
    assert S(r.Tagged("d105", "OK", "Conditional STORE failed", r.ModifiedCode(
        SequenceSet.from_numbers([7, 9])))) == (
        b"d105 OK [MODIFIED 7,9] Conditional STORE failed\r\n")
    assert S(r.Tagged("a", "NO", "too big", r.Code("TOOBIG"))) == b"a NO [TOOBIG] too big\r\n"
    assert S(r.Tagged("a", "NO", "x", r.Code("BADCHARSET", "(US-ASCII UTF-8)"))) == (
        b"a NO [BADCHARSET (US-ASCII UTF-8)] x\r\n")
    assert S(r.Untagged("OK", "hi", r.CapabilityCode(("IMAP4rev1", "IDLE")))) == (
        b"* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n")
    assert S(r.Untagged("BYE", "bye\r\nA1 OK injected")) == b"* BYE bye  A1 OK injected\r\n"
    assert S(r.Continuation()) == b"+ Ready for literal data\r\n"
    assert S(r.Continuation(challenge=b"\x00x")) == b"+ AHg=\r\n"


def test_untagged_data_rfc_examples() -> None:
    assert S(r.FlagsData(("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"))) == (
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n")
    assert S(r.ExistsData(172)) == b"* 172 EXISTS\r\n"
    assert S(r.RecentData(1)) == b"* 1 RECENT\r\n"
    assert S(r.ExpungeData(3)) == b"* 3 EXPUNGE\r\n"
    assert S(r.VanishedData(parse_sequence_set(b"41,43:116,118,120:211,214:540"), True)) == (
        b"* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n")
    assert S(r.SearchData((2, 84, 882))) == b"* SEARCH 2 84 882\r\n"
    assert S(r.SearchData((2, 5), modseq=917162500)) == b"* SEARCH 2 5 (MODSEQ 917162500)\r\n"
    assert S(r.SearchData(())) == b"* SEARCH\r\n"
    assert S(r.ESearchData("A282", min=2, count=3)) == b'* ESEARCH (TAG "A282") MIN 2 COUNT 3\r\n'
    assert S(r.ESearchData("A", uid=True, all=parse_sequence_set(b"1:3,5"))) == (
        b'* ESEARCH (TAG "A") UID ALL 1:3,5\r\n')
    assert S(r.ListData(("\\Noselect",), "/", "~/Mail/foo")) == (
        b'* LIST (\\Noselect) "/" "~/Mail/foo"\r\n')
    assert S(r.ListData((), None, "")) == b'* LIST () NIL ""\r\n'
    assert S(r.ListData(("\\Subscribed",), "/", "Foo", childinfo=("SUBSCRIBED",))) == (
        b'* LIST (\\Subscribed) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))\r\n')
    assert S(r.ListData((), "/", "Neu", oldname="Alt")) == (
        b'* LIST () "/" "Neu" ("OLDNAME" ("Alt"))\r\n')
    assert S(r.ListData((), "/", "Entwürfe", lsub=True)) == b'* LSUB () "/" "Entw&APw-rfe"\r\n'
    assert S(r.ListData((), "/", "Entwürfe"), utf8=True) == (
        '* LIST () "/" "Entwürfe"\r\n'.encode())
    assert S(r.StatusData("blurdybloop", (("MESSAGES", 231), ("UIDNEXT", 44292)))) == (
        b'* STATUS "blurdybloop" (MESSAGES 231 UIDNEXT 44292)\r\n')
    assert S(r.NamespaceData((("", "/"),), None, (("Public Folders/", "/"),))) == (
        b'* NAMESPACE (("" "/")) NIL (("Public Folders/" "/"))\r\n')
    assert S(r.QuotaData("", (("STORAGE", 10, 512),))) == b'* QUOTA "" (STORAGE 10 512)\r\n'
    assert S(r.QuotaRootData("INBOX", ("",))) == b'* QUOTAROOT "INBOX" ""\r\n'
    assert S(r.IdData((("name", "Schulhof"), ("os", None)))) == (
        b'* ID ("name" "Schulhof" "os" NIL)\r\n')
    assert S(r.IdData(None)) == b"* ID NIL\r\n"
    assert S(r.EnabledData(("CONDSTORE",))) == b"* ENABLED CONDSTORE\r\n"
    assert S(r.CapabilityData(("IMAP4rev1", "IMAP4rev2"))) == (
        b"* CAPABILITY IMAP4rev1 IMAP4rev2\r\n")


def test_fetch_literals_and_sections() -> None:
    when = datetime.datetime(1996, 7, 17, 2, 44, 25,
                             tzinfo=datetime.timezone(datetime.timedelta(hours=-7)))
    data = S(r.FetchData(12, (
        r.FlagsItem(("\\Seen",)), r.InternalDateItem(when), r.SizeItem(4286),
        r.BodySectionItem(Section((), "HEADER.FIELDS", ("DATE", "FROM")), b"Date: x\r\n\r\n"),
        r.BodySectionItem(Section((1, 2)), b"abc", origin=0),
        r.BinaryItem((1,), b"a\x00b"), r.BinarySizeItem((1,), 3), r.ModSeqItem(624140003),
        r.Rfc822Item("RFC822.TEXT", None), r.UidItem(7))))
    assert data == (
        b'* 12 FETCH (FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
        b"RFC822.SIZE 4286 BODY[HEADER.FIELDS (DATE FROM)] {11}\r\nDate: x\r\n\r\n "
        b'BODY[1.2]<0> "abc" BINARY[1] ~{3}\r\na\x00b BINARY.SIZE[1] 3 MODSEQ (624140003) '
        b"RFC822.TEXT NIL UID 7)\r\n")
    assert S(r.FetchData(1, (r.InternalDateItem(datetime.datetime(2020, 1, 5, 3, 4, 5)),))) == (
        b'* 1 FETCH (INTERNALDATE " 5-Jan-2020 03:04:05 +0000")\r\n')


def imaplib_shape(line: bytes) -> list[object]:
    """The list imaplib would hand IMAPClient for a ``* n FETCH`` response."""
    assert line.startswith(b"* ")
    number, rest = line[2:].split(b" FETCH ", 1)
    text = number + b" " + rest[:-2]
    out: list[object] = []
    while True:
        match = re.search(rb"~?\{([0-9]+)\}\r\n", text)
        if not match:
            out.append(text)
            return out
        size = int(match.group(1))
        out.append((text[:match.start()] + b"{%d}" % size,
                    text[match.end():match.end() + size]))
        text = text[match.end() + size:]


MESSAGE = (b'From: "Fred Foobar" <foobar@example.org>, Group: a@b.example, "Q \\"X\\"" <q@c>;\r\n'
           b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
           b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <1@example.org>\r\n"
           b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
           b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n"
           b"--b1\r\nContent-Type: application/pdf; name=a.pdf\r\n"
           b"Content-Disposition: attachment; filename=a.pdf\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b1--\r\n")


def test_envelope_and_bodystructure_through_imapclient() -> None:
    line = S(r.FetchData(3, (r.EnvelopeItem(envelope(MESSAGE)),
                             r.BodyStructureItem(bodystructure(MESSAGE)),
                             r.BodySectionItem(Section(), MESSAGE))))
    parsed = parse_fetch_response(imaplib_shape(line))[3]
    env = parsed[b"ENVELOPE"]
    assert env.subject == b"=?utf-8?q?Gr=C3=BC=C3=9Fe?="
    assert env.message_id == b"<1@example.org>"
    assert [(a.name, a.mailbox, a.host) for a in env.from_] == [
        (b"Fred Foobar", b"foobar", b"example.org"), (None, b"Group", None),
        (None, b"a", b"b.example"), (b'Q "X"', b"q", b"c"), (None, None, None)]
    assert env.sender == env.from_ and env.reply_to == env.from_
    body = parsed[b"BODYSTRUCTURE"]
    assert body.is_multipart and body[1] == b"mixed"
    text, pdf = body[0]
    assert text[:7] == (b"text", b"plain", (b"charset", b"utf-8"), None, None, b"8bit", 7)
    assert text[7] == 1
    assert pdf[:7] == (b"application", b"pdf", (b"name", b"a.pdf"), None, None, b"base64", 8)
    assert pdf[8] == (b"attachment", (b"filename", b"a.pdf"))
    assert parsed[b"BODY[]"] == MESSAGE


addresses = st.builds(Address, st.none() | st.binary(max_size=8), st.none(),
                      st.binary(min_size=1, max_size=8), st.binary(min_size=1, max_size=8))
envelopes = st.builds(
    Envelope, st.none() | st.binary(max_size=20), st.none() | st.binary(max_size=20),
    *[st.none() | st.lists(addresses, min_size=1, max_size=3).map(tuple)] * 6,
    st.none() | st.binary(max_size=20), st.none() | st.binary(max_size=20))


@settings(max_examples=examples(150), deadline=None)
@given(st.integers(1, 2**31), st.lists(st.from_regex(r"\A\\?[A-Za-z$]{1,8}\Z"), max_size=4),
       st.binary(max_size=60).filter(lambda d: b"\0" not in d), envelopes,
       st.integers(1, 2**32 - 1))
def test_fetch_round_trip_through_imapclient(number, flags, body, env, uid) -> None:
    line = S(r.FetchData(number, (r.FlagsItem(tuple(flags)), r.UidItem(uid),
                                  r.BodySectionItem(Section((1,), "TEXT"), body),
                                  r.EnvelopeItem(env))))
    parsed = parse_fetch_response(imaplib_shape(line), uid_is_key=False)[number]
    assert parsed[b"FLAGS"] == tuple(f.encode() for f in flags)
    assert parsed[b"UID"] == uid
    assert parsed[b"BODY[1.TEXT]"] == body
    got = parsed[b"ENVELOPE"]
    assert got.subject == env.subject and got.message_id == env.message_id
    for mine, theirs in ((env.to, got.to), (env.cc, got.cc), (env.bcc, got.bcc)):
        assert (None if theirs is None else tuple(
            (a.name, a.route, a.mailbox, a.host) for a in theirs)) == (
            None if mine is None else tuple(
            (a.name, a.adl, a.mailbox, a.host) for a in mine))


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(st.from_regex(r"\A\\[A-Za-z]{1,8}\Z"), max_size=3), st.none() | st.sampled_from(
    ["/", ".", "\\", '"']), texts, st.booleans())
def test_list_round_trip(attributes, delimiter, mailbox, utf8) -> None:
    items = read(S(r.ListData(tuple(attributes), delimiter, mailbox), utf8=utf8))
    assert items[:2] == [b"*", b"LIST"]
    assert items[2] == [a.encode() for a in attributes]
    assert items[3] == (None if delimiter is None else delimiter.encode())
    name = items[4]
    assert (name.decode() if utf8 else decode_mutf7(name)) == mailbox


@settings(max_examples=examples(150), deadline=None)
@given(texts, st.lists(st.tuples(st.sampled_from(["MESSAGES", "UIDNEXT", "SIZE"]),
                                 st.integers(0, 2**63)), max_size=3))
def test_status_round_trip(mailbox, values) -> None:
    items = read(S(r.StatusData(mailbox, tuple(values))))
    assert decode_mutf7(items[2]) == mailbox
    flat = items[3]
    assert [(flat[i].decode(), int(flat[i + 1])) for i in range(0, len(flat), 2)] == values


@settings(max_examples=examples(150), deadline=None)
@given(sequence_sets, st.booleans(), st.sets(st.integers(1, 10**6), max_size=20))
def test_vanished_and_search_round_trip(uids, earlier, numbers) -> None:
    items = read(S(r.VanishedData(uids, earlier)))
    assert isinstance(items[-1], Atom)
    assert parse_sequence_set(items[-1]) == uids and (items[2] == [b"EARLIER"]) == earlier
    items = read(S(r.ESearchData("t", all=SequenceSet.from_numbers(numbers) if numbers else None,
                                 count=len(numbers))))
    assert items[2] == [b"TAG", b"t"]
    if numbers:
        assert parse_sequence_set(items[-1]).expand(10**6) == sorted(numbers)
    items = read(S(r.SearchData(tuple(sorted(numbers)))))
    assert [int(x) for x in items[2:]] == sorted(numbers)


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=40), st.booleans())
def test_strings_round_trip(value, utf8) -> None:
    items = read(S(r.IdData((("k", value.decode("latin-1")),)), utf8=utf8))
    # IdData values are str: they travel as UTF-8.
    assert items[2] == [b"k", value.decode("latin-1").encode("utf-8")]
