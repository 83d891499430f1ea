"""Command parsing against the example lines of RFC 3501 / RFC 9051 and the
extension RFCs (RFC 9051 6, RFC 4731, RFC 7162, RFC 5258, RFC 3502)."""

from __future__ import annotations

import datetime

import pytest

from mailserver.imap.wire import (
    CommandFramer,
    CommandUnit,
    ContinuationRequest,
    FramingFailure,
    LiteralTooBig,
    ParseError,
    parse_command,
    parse_idle_done,
    parse_line,
    parse_sasl_response,
)
from mailserver.imap.wire import commands as c
from mailserver.imap.wire.fetch_items import (
    FetchBinary,
    FetchBinarySize,
    FetchBody,
    FetchItem,
    Section,
)
from mailserver.imap.wire.search import (
    SearchAnd,
    SearchDate,
    SearchFlagKey,
    SearchHeader,
    SearchKeyword,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSequence,
    SearchSize,
    SearchText,
)
from mailserver.imap.wire.sequence import SequenceSet


def p(line: bytes, **kwargs: bool) -> c.Command:
    return parse_line(line + b"\r\n", **kwargs)


@pytest.mark.parametrize(("line", "expected"), [
    (b"a441 CAPABILITY", c.Capability("a441")),
    (b"a002 NOOP", c.Noop("a002")),
    (b"A023 LOGOUT", c.Logout("A023")),
    (b"a001 STARTTLS", c.StartTls("a001")),
    (b"A001 NAMESPACE", c.Namespace("A001")),
    (b"A002 IDLE", c.Idle("A002")),
    (b"FXXZ CHECK", c.Check("FXXZ")),
    (b"A341 CLOSE", c.Close("A341")),
    (b"A342 UNSELECT", c.Unselect("A342")),
    (b"A202 EXPUNGE", c.Expunge("A202")),
    (b"A003 UID EXPUNGE 3000:3002", c.Expunge("A003", SequenceSet(((3000, 3002),)))),
    (b"a001 LOGIN SMITH SESAME", c.Login("a001", "SMITH", "SESAME")),
    (b'a001 LOGIN "f\\"oo" {3}\r\nb\\r', c.Login("a001", 'f"oo', "b\\r")),
    (b"A142 SELECT INBOX", c.Select("A142", "INBOX")),
    (b"A142 select inbox", c.Select("A142", "INBOX")),
    (b"A932 EXAMINE blurdybloop", c.Select("A932", "blurdybloop", read_only=True)),
    (b"A142 SELECT INBOX (CONDSTORE)", c.Select("A142", "INBOX", condstore=True)),
    (b"A003 CREATE owatagusiam/", c.Create("A003", "owatagusiam/")),
    (b"t1 CREATE \"Important Messages\" (USE (\\Important))",
     c.Create("t1", "Important Messages", ("\\Important",))),
    (b"A683 DELETE blurdybloop", c.Delete("A683", "blurdybloop")),
    (b"A683 RENAME blurdybloop sarasoop", c.Rename("A683", "blurdybloop", "sarasoop")),
    (b"A002 SUBSCRIBE #news.comp.mail.mime", c.Subscribe("A002", "#news.comp.mail.mime")),
    (b"A002 UNSUBSCRIBE #news.comp.mail.mime", c.Unsubscribe("A002", "#news.comp.mail.mime")),
    (b'A101 LIST "" ""', c.ListCommand("A101", "", ("",))),
    (b"A102 LIST #news.comp.mail.misc \"\"", c.ListCommand("A102", "#news.comp.mail.misc", ("",))),
    (b'A202 LIST ~/Mail/ %', c.ListCommand("A202", "~/Mail/", ("%",))),
    (b'A682 LIST "" *', c.ListCommand("A682", "", ("*",))),
    (b'A002 LSUB "#news." "comp.mail.*"', c.Lsub("A002", "#news.", "comp.mail.*")),
    (b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)",
     c.Status("A042", "blurdybloop", ("UIDNEXT", "MESSAGES"))),
    (b"a ENABLE CONDSTORE UTF8=ACCEPT", c.Enable("a", ("CONDSTORE", "UTF8=ACCEPT"))),
    (b"A003 COPY 2:4 MEETING", c.Copy("A003", SequenceSet(((2, 4),)), "MEETING")),
    (b"a UID MOVE 42:69 foo", c.Move("a", SequenceSet(((42, 69),)), "foo", uid=True)),
    (b"G GETQUOTA \"\"", c.GetQuota("G", "")),
    (b"G GETQUOTAROOT INBOX", c.GetQuotaRoot("G", "INBOX")),
    (b"a023 ID (\"name\" \"sodr\" \"version\" \"19.34\" \"vendor\" NIL)",
     c.Id("a023", (("name", "sodr"), ("version", "19.34"), ("vendor", None)))),
    (b"a ID NIL", c.Id("a", None)),
    (b"a COMPRESS DEFLATE", c.Compress("a", "DEFLATE")),
    (b"a AUTHENTICATE GSSAPI", c.Authenticate("a", "GSSAPI")),
    (b"a AUTHENTICATE PLAIN AHRlc3QAdGVzdA==", c.Authenticate("a", "PLAIN", b"\0test\0test")),
    (b"a AUTHENTICATE EXTERNAL =", c.Authenticate("a", "EXTERNAL", b"")),
])
def test_rfc_examples(line: bytes, expected: c.Command) -> None:
    assert p(line) == expected


def test_search_rfc_4731_example() -> None:
    command = p(b'A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"')
    assert command == c.Search("A282", SearchAnd((
        SearchFlagKey("FLAGGED"), SearchDate("SINCE", datetime.date(1994, 2, 1)),
        SearchNot(SearchText("FROM", "Smith")))), return_options=("MIN", "COUNT"))


def test_search_full_grammar() -> None:
    command = p(b'A1 UID SEARCH CHARSET UTF-8 OR (UID 1:5 LARGER 10) SMALLER 5 '
                b'HEADER X-Foo {4}\r\n\xc3\xa4bc KEYWORD $Junk UNKEYWORD foo 2:* '
                b'MODSEQ "/flags/\\\\draft" all 620162338 SENTON "3-Jan-2020" '
                b'BEFORE 01-Feb-2000 NEW OLD RECENT UNSEEN')
    assert isinstance(command, c.Search) and command.uid and command.charset == "UTF-8"
    assert command.key == SearchAnd((
        SearchOr(SearchAnd((SearchSequence(SequenceSet(((1, 5),)), uid=True),
                            SearchSize("LARGER", 10))), SearchSize("SMALLER", 5)),
        SearchHeader("X-Foo", "äbc"), SearchKeyword("$Junk"), SearchKeyword("foo", True),
        SearchSequence(SequenceSet(((2, None),))),
        SearchModSeq(620162338, ("/flags/\\draft", "all")),
        SearchDate("SENTON", datetime.date(2020, 1, 3)),
        SearchDate("BEFORE", datetime.date(2000, 2, 1)),
        SearchFlagKey("NEW"), SearchFlagKey("OLD"), SearchFlagKey("RECENT"),
        SearchFlagKey("UNSEEN")))


def test_search_uid_dollar_is_saved_result() -> None:
    # $ stands alone (RFC 5182 2.1).
    command = p(b"a SEARCH RETURN (SAVE) UID $")
    assert command == c.Search("a", SearchSequence(SequenceSet.saved_result(), uid=True),
                               return_options=("SAVE",))


def test_search_unknown_charset_is_no_badcharset() -> None:
    with pytest.raises(ParseError) as error:
        p(b"a SEARCH CHARSET KOI8-R TEXT x")
    assert error.value.status == "NO" and error.value.code.startswith("BADCHARSET")
    assert error.value.tag == "a"


def test_fetch_changedsince_vanished() -> None:
    assert p(b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)") == c.Fetch(
        "a", SequenceSet(((1, None),)), (FetchItem("FLAGS"),), uid=True,
        changed_since=12345, vanished=True)
    with pytest.raises(ParseError):
        p(b"a FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)")  # VANISHED needs UID


@pytest.mark.parametrize(("macro", "items"), [
    (b"ALL", ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")),
    (b"FAST", ("FLAGS", "INTERNALDATE", "RFC822.SIZE")),
    (b"FULL", ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")),
])
def test_fetch_macros(macro: bytes, items: tuple[str, ...]) -> None:
    command = p(b"a FETCH 1 " + macro)
    assert command.attributes == tuple(FetchItem(name) for name in items)


def test_fetch_items() -> None:
    command = p(b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)] body.peek[1.2.MIME] "
                b"BODY[]<0.2048> BODY[3.TEXT] BINARY.PEEK[1]<5.10> BINARY.SIZE[2] BINARY[] "
                b"RFC822.SIZE uid MODSEQ BODYSTRUCTURE ENVELOPE RFC822.HEADER)")
    assert command.attributes == (
        FetchItem("FLAGS"),
        FetchBody(Section((), "HEADER.FIELDS", ("DATE", "FROM"))),
        FetchBody(Section((1, 2), "MIME"), peek=True),
        FetchBody(Section(), (0, 2048)),
        FetchBody(Section((3,), "TEXT")),
        FetchBinary((1,), (5, 10), peek=True),
        FetchBinarySize((2,)),
        FetchBinary(()),
        FetchItem("RFC822.SIZE"), FetchItem("UID"), FetchItem("MODSEQ"),
        FetchItem("BODYSTRUCTURE"), FetchItem("ENVELOPE"), FetchItem("RFC822.HEADER"))


@pytest.mark.parametrize("line", [
    b"a FETCH 1 (BODY[MIME])", b"a FETCH 1 BODY[1.]", b"a FETCH 1 BODY[0]",
    b"a FETCH 1 BODY[]<0.0>", b"a FETCH 1 (FLAGS", b"a FETCH 1 FOO", b"a FETCH 1 ()",
    b"a FETCH 0 FLAGS", b"a FETCH 1 BINARY[1.TEXT]", b"a FETCH 1 BODY[HEADER.FIELDS ()]",
])
def test_fetch_errors(line: bytes) -> None:
    with pytest.raises(ParseError) as error:
        p(line)
    assert error.value.tag == "a"


def test_store() -> None:
    assert p(b"A003 STORE 2:4 +FLAGS (\\Deleted)") == c.Store(
        "A003", SequenceSet(((2, 4),)), "add", ("\\Deleted",))
    assert p(b"A004 UID STORE 1,3 -FLAGS.SILENT \\Seen $Junk") == c.Store(
        "A004", SequenceSet(((1, 1), (3, 3))), "remove", ("\\Seen", "$Junk"),
        silent=True, uid=True)
    assert p(b"d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) FLAGS ()") == c.Store(
        "d105", SequenceSet(((7, 7), (5, 5), (9, 9))), "replace", (),
        unchanged_since=320162338)


def test_select_qresync_rfc_7162_example() -> None:
    command = p(b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 "
                b"41,43:211,214:541))")
    assert command.qresync == c.QresyncParams(
        67890007, 20050715194045000, SequenceSet(((41, 41), (43, 211), (214, 541))))
    command = p(b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 "
                b"1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,"
                b"29976,29979,29982,29985,29988,29991,29994,29997)))")
    assert command.qresync.seq_match[0] == SequenceSet(
        ((5000, 5000), (7500, 7500), (9000, 9000), (9990, 9999)))


def test_list_extended() -> None:
    command = p(b'A04 LIST (REMOTE SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "Drafts" %) '
                b"RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))")
    assert command == c.ListCommand(
        "A04", "", ("INBOX", "Drafts", "%"), ("REMOTE", "SUBSCRIBED", "RECURSIVEMATCH"),
        return_children=True, return_special_use=True,
        status_items=("MESSAGES", "UNSEEN", "SIZE"), extended=True)
    assert p(b'a LIST "" % RETURN (SUBSCRIBED)').return_subscribed
    with pytest.raises(ParseError):
        p(b'a LIST (RECURSIVEMATCH) "" %')


@pytest.mark.parametrize("line", [b'a LIST (RECURSIVEMATCH REMOTE) "" *',
                                  b'a LIST (REMOTE RECURSIVEMATCH) "" *',
                                  b'a LIST (RECURSIVEMATCH RECURSIVEMATCH) "" *'])
def test_recursivematch_without_a_real_selection_is_bad(line: bytes) -> None:
    """RFC 5258 3: RECURSIVEMATCH alone or only with REMOTE is a syntax
    error, answered BAD (issue 14)."""
    with pytest.raises(ParseError) as raised:
        p(line)
    assert raised.value.status == "BAD"


@pytest.mark.parametrize(("line", "code"), [
    (b'a SELECT "&Jjo"', "NONEXISTENT"), (b'a STATUS "x&-&" (MESSAGES)', "NONEXISTENT"),
    (b'a CREATE "&Jj!-"', "CANNOT"),
    (b'a RENAME x "&"', "CANNOT"), (b'a COPY 1 "&ZeVnLIqe"', "NONEXISTENT")])
def test_invalid_modified_utf7_is_no(line: bytes, code: str) -> None:
    """RFC 3501 5.1.3: a name with a broken modified UTF-7 sequence is
    valid syntax (an astring) naming no mailbox: NO, not BAD (issue 14)."""
    with pytest.raises(ParseError) as raised:
        p(line)
    assert (raised.value.status, raised.value.code, raised.value.tag) == ("NO", code, "a")


@pytest.mark.parametrize(("line", "patterns"), [
    (b'a LIST "" "&AGE"', ()), (b'a LIST "&AGE" "*"', ()),
    (b'a LIST "" ("&AGE" INBOX)', ("INBOX",)), (b'a LIST (SUBSCRIBED) "" "a&Jjo-&x"', ())])
def test_invalid_list_pattern_matches_nothing(line: bytes, patterns: tuple[str, ...]) -> None:
    """RFC 3501 6.3.8 / RFC 9051 6.3.9: a LIST pattern (or reference) that
    is no valid modified UTF-7 matches no mailbox name: the command lists
    nothing and completes OK (as Dovecot does), it does not fail with NO."""
    command = p(line)
    assert isinstance(command, c.ListCommand)
    assert command.patterns == patterns
    lsub = p(b'a LSUB "" "&AGE*"')
    assert isinstance(lsub, c.Lsub) and lsub.pattern is None


def test_append_rfc_example_with_synchronising_literal() -> None:
    message = (b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
               b"From: Fred Foobar <foobar@Blurdybloop.COM>\r\n"
               b"Subject: afternoon meeting\r\n"
               b"To: mooch@owatagu.siam.edu\r\n"
               b"Message-Id: <B27397-0100000@Blurdybloop.COM>\r\n"
               b"MIME-Version: 1.0\r\n"
               b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n"
               b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n")
    assert len(message) == 310
    framer = CommandFramer(max_line_length=1000, max_literal_size=1000)
    events = framer.feed(b"A003 APPEND saved-messages (\\Seen) {310}\r\n")
    assert events == [ContinuationRequest(310)]
    events = framer.feed(message + b"\r\n")
    assert len(events) == 1 and isinstance(events[0], CommandUnit)
    assert parse_command(events[0]) == c.Append("A003", "saved-messages", (
        c.AppendMessage(message, ("\\Seen",)),))


def test_multiappend_with_dates_and_literal8() -> None:
    command = p(b'a APPEND Drafts (\\Draft) " 7-Feb-1994 21:52:25 -0800" {2+}\r\nhi '
                b'~{3}\r\na\x00b "17-Jul-1996 02:44:25 +0200" {1}\r\nx')
    when = datetime.datetime(1994, 2, 7, 21, 52, 25,
                             tzinfo=datetime.timezone(datetime.timedelta(hours=-8)))
    assert command == c.Append("a", "Drafts", (
        c.AppendMessage(b"hi", ("\\Draft",), when),
        c.AppendMessage(b"a\x00b", binary=True),
        c.AppendMessage(b"x", (), datetime.datetime(
            1996, 7, 17, 2, 44, 25, tzinfo=datetime.timezone(datetime.timedelta(hours=2))))))


def test_nul_only_in_literal8() -> None:
    with pytest.raises(ParseError):
        p(b"a APPEND x {3}\r\na\x00b")
    with pytest.raises(ParseError):
        p(b"a LOGIN ~{1}\r\nx y")


def test_mailbox_names_modified_utf7_and_utf8() -> None:
    assert p(b"a SELECT &ZeVnLIqe-").mailbox == "日本語"
    assert p(b"a CREATE Entw&APw-rfe").mailbox == "Entwürfe"
    assert p(b"a SELECT \"Entw\xc3\xbcrfe\"", utf8=True).mailbox == "Entwürfe"
    # After UTF8=ACCEPT, "&" is an ordinary character (RFC 6855 3).
    assert p(b"a SELECT A&B-", utf8=True).mailbox == "A&B-"
    with pytest.raises(ParseError):
        p(b"a SELECT &Jjo!")
    with pytest.raises(ParseError):
        p(b"a SELECT \"\xc3\xbc\"")  # 8-bit without UTF8=ACCEPT


@pytest.mark.parametrize("line", [
    b"", b"a", b"a NOOP extra", b"+ NOOP", b"a FOO", b"a UID NOOP", b"a SELECT",
    b"a LOGIN x", b"a STORE 1 FLAGS", b"a STORE 1 XFLAGS (\\Seen)", b"a SEARCH",
    b"a SEARCH FOO", b"a SEARCH (", b"a SEARCH ()", b"a SEARCH ON 32-Jan-2000",
    b"a SEARCH NOT " * 3 + b"(" * 200 + b"ALL" + b")" * 200, b"a AUTHENTICATE PLAIN ====",
    b"a STATUS x (BOGUS)", b"a COPY 1:2:3 x", b"a LIST (BOGUS) \"\" *",
    b"a SELECT x (QRESYNC (0 1))", b"a APPEND x", b"a ID (\"a\")",
])
def test_bad_commands(line: bytes) -> None:
    with pytest.raises(ParseError) as error:
        p(line)
    if line.startswith(b"a "):
        assert error.value.tag == "a"


def test_idle_done_and_sasl_lines() -> None:
    assert parse_idle_done(CommandUnit((b"done",))) == c.IdleDone()
    with pytest.raises(ParseError):
        parse_idle_done(CommandUnit((b"a NOOP",)))
    assert parse_sasl_response(CommandUnit((b"dGVzdA==",))) == b"test"
    assert parse_sasl_response(CommandUnit((b"*",))) is None
    with pytest.raises(ParseError):
        parse_sasl_response(CommandUnit((b"not base64!",)))


# --- framer ------------------------------------------------------------------

def test_framer_line_too_long_is_fatal() -> None:
    framer = CommandFramer(max_line_length=20, max_literal_size=100)
    assert framer.feed(b"a NOOP\r\n") == [CommandUnit((b"a NOOP",))]
    events = framer.feed(b"a " + b"x" * 30)
    assert events == [FramingFailure("command line too long")]
    assert framer.failed and framer.feed(b"\r\nb NOOP\r\n") == []


def test_framer_line_too_long_split_feed() -> None:
    framer = CommandFramer(max_line_length=10, max_literal_size=100)
    assert framer.feed(b"a NOOP 123") == []
    assert framer.feed(b"4\r\n") == [FramingFailure("command line too long")]


def test_framer_synchronising_literal_too_big_gets_no_continuation() -> None:
    framer = CommandFramer(max_line_length=100, max_literal_size=10)
    events = framer.feed(b"A1 APPEND INBOX {11}\r\n")
    assert events == [LiteralTooBig("A1", 11, synchronizing=True)]
    # The client, told NO [TOOBIG], goes on with a new command.
    assert framer.feed(b"A2 NOOP\r\n") == [CommandUnit((b"A2 NOOP",))]


def test_framer_non_synchronising_literal_too_big_ends_the_connection() -> None:
    """RFC 7888 4: refused at once; its octets are never read (issue 19.6)."""
    framer = CommandFramer(max_line_length=100, max_literal_size=10)
    events = framer.feed(b"A1 APPEND INBOX {2147483648+}\r\n" + b"x" * 15)
    assert events == [LiteralTooBig("A1", 2147483648, synchronizing=False),
                      FramingFailure("non-synchronizing literal too big")]
    assert framer.failed
    assert framer.feed(b"y" * 5 + b"\r\nA2 NOOP\r\n") == []


def test_framer_command_size_bounds_many_literals() -> None:
    framer = CommandFramer(max_line_length=100, max_literal_size=10, max_command_size=40)
    events = framer.feed(b"a APPEND x {10+}\r\n0123456789 {10+}\r\n0123456789 {10+}\r\n")
    assert events[-2:] == [LiteralTooBig("a", 10, synchronizing=False),
                           FramingFailure("non-synchronizing literal too big")]


def test_framer_literal_zero_and_bare_lf() -> None:
    framer = CommandFramer()
    events = framer.feed(b"a LOGIN {0}\r\n {0+}\n\nb NOOP\n")
    assert events == [ContinuationRequest(0),
                      CommandUnit((b"a LOGIN {0}", b" {0+}", b""), (b"", b"")),
                      CommandUnit((b"b NOOP",))]
    assert p(b"a LOGIN {0}\r\n {0+}\r\n") == c.Login("a", "", "")


def test_dollar_cannot_be_combined() -> None:
    with pytest.raises(ParseError):
        p(b"a UID SEARCH UID 1:5,$")
