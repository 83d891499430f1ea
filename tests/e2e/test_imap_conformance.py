"""IMAP conformance over loopback TLS (issue 14): the corner cases an
independent conformance run found, each checked against the RFC text named
in the test's docstring, with imaplib and a raw client."""

from __future__ import annotations

import asyncio
import imaplib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conf.app import School
from conf.settings import Settings
from tests.mailserver.imap.session.helpers import (
    PASSWORD,
    RawClient,
    client_tls,
    deliver,
    imap_ports,
    imap_school,
    imap_settings,
    make_account,
)

HELLO = (b"From: Lehrer <lehrer@schule.test>\r\nTo: anna.schmidt@schule.test\r\n"
         b"Subject: hello\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
         b"--XX\r\nhello\r\n--XX\r\nContent-Type: text/x-myown; charset=us-ascii\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n"
         b"--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable"
         b"\r\n\r\nGr=C3=BC=C3=9Fe\r\n--XX--\r\n")


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Settings:
    return imap_settings(tmp_path / "school", database_url, max_literal_size=1_000_000)


@pytest.fixture
async def env(config: Settings) -> AsyncIterator[tuple[School, int]]:
    async with imap_school(config) as school:
        account_id = await make_account(school)
        yield school, account_id


@pytest.fixture
async def client(env: tuple[School, int], config: Settings) -> AsyncIterator[RawClient]:
    c = await RawClient.connect(imap_ports(env[0])[1], tls=client_tls(config))
    assert (await c.login()).status == "OK"
    yield c
    await c.close()


def imaps(school: School, settings: Settings) -> imaplib.IMAP4_SSL:
    m = imaplib.IMAP4_SSL("127.0.0.1", imap_ports(school)[1],
                          ssl_context=client_tls(settings), timeout=20)
    m.login("anna.schmidt", PASSWORD)
    return m


async def test_sections_of_an_appended_multipart(env: tuple[School, int],
                                               config: Settings) -> None:
    """RFC 3501 6.4.5 (BODY[n], BODY[n.MIME]), RFC 3516 4.2 (BINARY.SIZE[n])
    and RFC 3501 7.4.2 (BODY) over imaplib: the first part "hello" has no
    header at all, the second is text/x-myown in base64, the third
    quoted-printable (issue 14)."""
    school, _ = env

    def client() -> list:
        with imaps(school, config) as m:
            assert m.append("INBOX", None, None, HELLO)[0] == "OK"
            m.select("INBOX")
            answers = []
            for items in ("(BODY.PEEK[1])", "(BODY.PEEK[1.MIME])",
                          "(BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[3])",
                          "(BINARY.PEEK[2] BINARY.PEEK[3]<2.3>)", "(BODY)"):
                typ, data = m.fetch("1", items)
                assert typ == "OK"
                answers.append(b"".join(part if isinstance(part, bytes) else b"".join(part)
                                        for part in data))
            return answers
    body1, mime1, sizes, binaries, body = await asyncio.to_thread(client)
    assert body1 == b'1 (BODY[1] "hello")'
    assert mime1 == b'1 (BODY[1.MIME] "")'
    assert sizes == b"1 (BINARY.SIZE[1] 5 BINARY.SIZE[2] 11 BINARY.SIZE[3] 7)"
    assert binaries.startswith(b'1 (BINARY[2] "hello world" BINARY[3]<2> {3}')
    assert binaries.endswith("ü".encode() + b"\xc3)")
    assert body.endswith(b'("text" "x-myown" ("charset" "us-ascii") NIL NIL "base64" 16 1)'
                         b'("text" "plain" ("charset" "us-ascii") NIL NIL "quoted-printable"'
                         b' 15 1) "mixed"))')
    assert b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 1)' in body


NESTED = (b"From: a@b.example\r\nSubject: n\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: multipart/mixed; boundary=o\r\n\r\n"
          b"--o\r\nContent-Type: text/plain\r\n\r\nouter\r\n"
          b"--o\r\nContent-Type: message/rfc822\r\n\r\n"
          b"From: x@y.example\r\nSubject: inner\r\n"
          b"Content-Type: multipart/alternative; boundary=i\r\n\r\n"
          b"--i\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n"
          b"--i\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--i--\r\n\r\n"
          b"--o\r\nContent-Type: application/x-odd\r\nContent-Transfer-Encoding: x-uuencode"
          b"\r\n\r\nzzz\r\n--o--\r\n")


async def test_nested_sections_and_unknown_encoding(env: tuple[School, int],
                                                    client: RawClient) -> None:
    """RFC 3501 6.4.5 nested section specs of a message/rfc822 part (n.MIME,
    n.HEADER, n.HEADER.FIELDS, n.m, n.m.MIME, n.TEXT<o.l>), RFC 3516 4.2
    BINARY / BINARY.SIZE of a nested part, and 4.3: BINARY of a part whose
    Content-Transfer-Encoding cannot be undone is ``NO [UNKNOWN-CTE]``."""
    school, account = env
    await deliver(school, account, NESTED)
    await client.command("SELECT INBOX")
    reply = await client.command(
        "FETCH 1 (BODY.PEEK[2.MIME] BODY.PEEK[2.HEADER.FIELDS (SUBJECT)] BODY.PEEK[2.1.MIME]"
        " BODY.PEEK[2.1] BODY.PEEK[2.2] BODY.PEEK[2.TEXT]<0.5>)")
    assert reply.untagged == [
        b"* 1 FETCH (BODY[2.MIME] {32}\r\nContent-Type: message/rfc822\r\n\r\n"
        b" BODY[2.HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: inner\r\n\r\n"
        b" BODY[2.1.MIME] {47}\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b' BODY[2.1] "Gr=C3=BC=C3=9Fe" BODY[2.2] "<b>x</b>" BODY[2.TEXT]<0> "--i\r\n")'
        .replace(b'"--i\r\n"', b"{5}\r\n--i\r\n")]
    reply = await client.command("FETCH 1 (BINARY.SIZE[2.1] BINARY.SIZE[1] BINARY.PEEK[2.1])")
    assert reply.untagged == ["* 1 FETCH (BINARY.SIZE[2.1] 7 BINARY.SIZE[1] 5 BINARY[2.1] {7}"
                              "\r\nGrüße)".encode()]
    for items in ("(BINARY.PEEK[3])", "(BINARY.SIZE[3])", "(BINARY[3]<0.2>)"):
        reply = await client.command(f"FETCH 1 {items}")
        assert (reply.status, reply.text[:13]) == ("NO", "[UNKNOWN-CTE]"), items


ADDRESSES = (b'From: "Real Name" <user@domain.example>\r\n'
             b"Reply-To: user@domain.example (Comment Name)\r\n"
             b'To: Kollegium: a@schule.example, "Bea, B." <b@schule.example>;\r\n'
             b"Cc: =?utf-8?q?J=C3=BCrgen?= <j@schule.example>\r\n"
             b"Subject: Adressen\r\n\r\nbody\r\n")


async def test_envelope_and_search_address_forms(env: tuple[School, int],
                                                 client: RawClient) -> None:
    """RFC 3501 7.4.2 ENVELOPE keeps display names (quoted, comment form,
    encoded words raw) and group syntax; RFC 3501 6.4.4 SEARCH FROM/TO/CC
    find them written as ``Name <address>`` (issue 14)."""
    school, account = env
    await deliver(school, account, ADDRESSES)
    await client.command("SELECT INBOX")
    reply = await client.command("FETCH 1 (ENVELOPE)")
    assert reply.untagged == [
        b'* 1 FETCH (ENVELOPE (NIL "Adressen" (("Real Name" NIL "user" "domain.example"))'
        b' (("Real Name" NIL "user" "domain.example"))'
        b' (("Comment Name" NIL "user" "domain.example"))'
        b' ((NIL NIL "Kollegium" NIL) (NIL NIL "a" "schule.example")'
        b' ("Bea, B." NIL "b" "schule.example") (NIL NIL NIL NIL))'
        b' (("=?utf-8?q?J=C3=BCrgen?=" NIL "j" "schule.example")) NIL NIL NIL))']
    for key in ('FROM "Real Name <user@domain.example>"', 'FROM "Real Name"',
                'TO "Bea, B. <b@schule.example>"', "CC {22+}\r\nJürgen <j@schule.example>"):
        raw = key.encode()
        if "{" in key:
            raw = b"CHARSET UTF-8 CC {%d+}\r\n" % len("Jürgen <j@schule.example>".encode()) \
                + "Jürgen <j@schule.example>".encode()
        reply = await client.command(b"SEARCH " + raw)
        assert reply.untagged == [b"* SEARCH 1"], key


async def test_new_keyword_is_announced_before_fetch(env: tuple[School, int],
                                                     config: Settings) -> None:
    """RFC 3501 7.2.6 / RFC 9051 7.3.5: a keyword used for the first time
    is sent in ``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` before any FETCH
    shows it, to the session that stored it and to another session that
    learns of it by NOOP or FETCH FLAGS (issue 14)."""
    school, account = env
    for n in range(2):
        await deliver(school, account, HELLO.replace(b"Subject: hello", b"Subject: m%d" % n))
    port = imap_ports(school)[1]
    a = await RawClient.connect(port, tls=client_tls(config))
    b = await RawClient.connect(port, tls=client_tls(config))
    for c in (a, b):
        await c.login()
        await c.command("SELECT INBOX")
    reply = await a.command("STORE 1 +FLAGS ($Hausaufgabe)")
    assert reply.untagged[0] == (
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Hausaufgabe)")
    assert reply.untagged[1].startswith(
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Hausaufgabe \\*)]")
    # Both messages arrived before A's SELECT: \Recent to A (RFC 3501 2.3.2).
    assert reply.untagged[2] == b"* 1 FETCH (FLAGS (\\Recent $Hausaufgabe))"
    assert (await a.command("STORE 2 +FLAGS ($Hausaufgabe)")).untagged == [
        b"* 2 FETCH (FLAGS (\\Recent $Hausaufgabe))"]  # known now: no second announcement
    reply = await b.command("NOOP")
    first_fetch = next(i for i, line in enumerate(reply.untagged) if b"FETCH" in line)
    flags_at = next(i for i, line in enumerate(reply.untagged) if line.startswith(b"* FLAGS"))
    assert flags_at < first_fetch and b"$Hausaufgabe" in reply.untagged[flags_at]
    c = await RawClient.connect(port, tls=client_tls(config))
    await c.login()
    await c.command("SELECT INBOX")
    await a.command("STORE 1 +FLAGS (Neu)")
    reply = await c.command("FETCH 1:* (FLAGS)")
    assert reply.untagged[0].startswith(b"* FLAGS (") and b"Neu" in reply.untagged[0]
    for client in (a, b, c):
        await client.close()


async def test_condstore_enabling_command_reports_highestmodseq(
        env: tuple[School, int], client: RawClient, config: Settings) -> None:
    """RFC 7162 3.1: the first CONDSTORE-enabling command given in the
    selected state (here FETCH ... (MODSEQ), or STORE UNCHANGEDSINCE)
    answers with ``[HIGHESTMODSEQ n]``, and with QRESYNC so does EXPUNGE
    (RFC 7162 3.2.10); RFC 4731 3.2: ESEARCH with only MIN or MAX reports
    the MODSEQ of that message (issue 14)."""
    school, account = env
    for _ in range(3):
        await deliver(school, account, HELLO)
    select = await client.command("SELECT INBOX")
    assert select.status == "OK"
    reply = await client.command("FETCH 1 (MODSEQ)")
    found = re.match(r"\[HIGHESTMODSEQ (\d+)\]", reply.text)
    assert found, reply.text
    highest = int(found.group(1))
    assert (await client.command("FETCH 1 (MODSEQ)")).text == "FETCH completed"
    await client.command("STORE 1 +FLAGS (\\Flagged)")
    await client.command("STORE 3 +FLAGS (\\Flagged)")
    reply = await client.command("SEARCH RETURN (MIN) MODSEQ 1")
    modseq_of_1 = int(re.search(rb"MODSEQ \((\d+)\)", (await client.command(
        "FETCH 1 (MODSEQ)")).untagged[0]).group(1))
    assert reply.untagged[0].endswith(b"MIN 1 MODSEQ %d" % modseq_of_1)
    reply = await client.command("SEARCH RETURN (MAX) MODSEQ 1")
    assert int(reply.untagged[0].rsplit(b" ", 1)[1]) > modseq_of_1 > highest
    await client.command("ENABLE QRESYNC")
    await client.command("STORE 2 +FLAGS.SILENT (\\Deleted)")
    reply = await client.command("EXPUNGE")
    assert reply.untagged[0].startswith(b"* VANISHED 2")
    assert re.match(r"\[HIGHESTMODSEQ \d+\]", reply.text), reply.text
    fresh = await RawClient.connect(imap_ports(school)[1], tls=client_tls(config))
    await fresh.login()
    await fresh.command("SELECT INBOX")
    reply = await fresh.command("UID STORE 1 (UNCHANGEDSINCE 999999) +FLAGS (\\Seen)")
    assert "[HIGHESTMODSEQ " in reply.text or any(b"HIGHESTMODSEQ" in line
                                                   for line in reply.untagged)
    await fresh.close()


async def test_mailbox_name_errors(client: RawClient) -> None:
    """RFC 3501 5.1.3: an invalid modified UTF-7 name is NO, not BAD (but
    as a LIST / LSUB pattern it only matches nothing: OK, RFC 3501 6.3.8);
    RFC 5258 3: ``(RECURSIVEMATCH REMOTE)`` is BAD; names with ``.`` or
    ``..`` levels, empty levels or a leading separator are refused with
    ``NO [CANNOT]`` (RFC 5530 3, issue 19.10)."""
    for command in ('SELECT "&Jjo"', 'EXAMINE "&-&"', 'STATUS "a&Jjo-&x" (MESSAGES)',
                    'DELETE "&AGE"'):
        reply = await client.command(command)
        assert (reply.status, reply.text[:13]) == ("NO", "[NONEXISTENT]"), command
    assert (await client.command('CREATE "&Jj!-"')).text.startswith("[CANNOT]")
    # A LIST / LSUB pattern or reference that is no valid name matches
    # nothing: OK without lines (RFC 3501 6.3.8 / 6.3.9; Dovecot does the same).
    for command in ('LIST "" "&Jjo"', 'LIST "&Jjo" "*"', 'LIST "" ("&Jjo" "INBOX")',
                    'LSUB "" "&-&*"', 'LIST (SUBSCRIBED) "" "a&Jjo-&x"'):
        reply = await client.command(command)
        assert reply.status == "OK", command
        assert reply.untagged == ([b'* LIST (\\HasNoChildren) "/" "INBOX"']
                                  if "INBOX" in command else []), (command, reply.untagged)
    reply = await client.command('LIST (RECURSIVEMATCH REMOTE) "" "*"')
    assert reply.status == "BAD"
    assert (await client.command('LIST (RECURSIVEMATCH SUBSCRIBED) "" "*"')).status == "OK"
    for name in ("a/../b", "..", "a/./b", "x/..", "/a", "a//b", "../Sent"):
        reply = await client.command(f'CREATE "{name}"')
        assert (reply.status, reply.text[:8]) == ("NO", "[CANNOT]"), name
    assert (await client.command("CREATE Klasse")).status == "OK"
    reply = await client.command('RENAME Klasse "Klasse/../Sent2"')
    assert (reply.status, reply.text[:8]) == ("NO", "[CANNOT]")
    reply = await client.command('LIST "" "*"')
    assert not any(b".." in line for line in reply.untagged)


async def test_odd_atoms_never_close_the_connection(client: RawClient) -> None:
    """RFC 3501 7.1.5 / RFC 9051 7.1.5: every unparsable line is one BAD;
    the session goes on. Only an unbroken run of errors ends it, so a
    client that keeps working between odd commands is never cut off."""
    odd = [b"* NOOP", b"+ x", b")", b"a1 NOOP x y z", b"a2 (((((", b"a3 FETCH 1 (BODY[)",
           b"\x80\x81 NOOP", b"a4 SELECT", b'a5 "quoted', b"a6 NOOP\x00", b"   ", b"",
           b"a7 \t NOOP", b"a8 " + b"%% \\x ) ( ] [ " * 200]
    for _ in range(3):  # more odd lines in total than max_errors (20)
        for line in odd:
            await client.send_raw(line + b"\r\n")
            answer = await client.read_line()
            assert b" BAD " in answer, (line, answer)
        assert (await client.command("NOOP")).status == "OK"


async def _session(school: School, config: Settings, *first: str) -> RawClient:
    c = await RawClient.connect(imap_ports(school)[1], tls=client_tls(config))
    assert (await c.login()).status == "OK"
    for command in first:
        assert (await c.command(command)).status == "OK", command
    return c


def _recent(reply: object) -> list[bytes]:
    return [line for line in reply.untagged if line.endswith(b" RECENT")]  # type: ignore


async def test_recent_belongs_to_the_first_session(env: tuple[School, int],
                                                   config: Settings) -> None:
    """RFC 3501 2.3.2, 6.3.1, 6.3.2, 6.4.4, 7.3.2: \\Recent is set for the
    one session that learns of a message first; SELECT reports ``* n
    RECENT``, EXAMINE looks without taking it, SEARCH RECENT / NEW / OLD and
    STATUS RECENT follow it, a message arriving (or COPYed into the
    selected mailbox) is reported as RECENT; IMAP4rev2 sessions (RFC 9051
    Appendix E) neither see nor take it (issue 14)."""
    school, account = env
    for n in range(2):
        await deliver(school, account, HELLO.replace(b"hello\r\n--XX", b"m%d\r\n--XX" % n))
    status = await _session(school, config)
    assert (await status.command("STATUS INBOX (RECENT MESSAGES)")).untagged == [
        b'* STATUS "INBOX" (RECENT 2 MESSAGES 2)']
    rev2 = await _session(school, config, "ENABLE IMAP4rev2")
    reply = await rev2.command("SELECT INBOX")
    assert _recent(reply) == []
    assert (await rev2.command("FETCH 1 (FLAGS)")).untagged == [b"* 1 FETCH (FLAGS ())"]
    viewer = await _session(school, config)
    assert _recent(await viewer.command("EXAMINE INBOX")) == [b"* 2 RECENT"]
    a = await _session(school, config)
    assert _recent(await a.command("SELECT INBOX")) == [b"* 2 RECENT"]
    assert (await a.command("SEARCH RECENT")).untagged == [b"* SEARCH 1 2"]
    assert (await a.command("FETCH 1 (FLAGS)")).untagged == [b"* 1 FETCH (FLAGS (\\Recent))"]
    await a.command("STORE 1 +FLAGS.SILENT (\\Seen)")
    assert (await a.command("SEARCH NEW")).untagged == [b"* SEARCH 2"]
    assert (await a.command("SEARCH OLD")).untagged == [b"* SEARCH"]
    b = await _session(school, config)
    assert _recent(await b.command("SELECT INBOX")) == [b"* 0 RECENT"]
    assert (await b.command("SEARCH RECENT")).untagged == [b"* SEARCH"]
    assert (await b.command("SEARCH OLD")).untagged == [b"* SEARCH 1 2"]
    assert (await status.command("STATUS INBOX (RECENT)")).untagged == [
        b'* STATUS "INBOX" (RECENT 0)']
    # A new message: recent to the session that hears of it first (B here).
    await deliver(school, account, HELLO)
    assert (await b.command("NOOP")).untagged == [b"* 3 EXISTS", b"* 1 RECENT"]
    assert (await b.command("SEARCH RECENT")).untagged == [b"* SEARCH 3"]
    reply = await a.command("NOOP")
    assert b"* 3 EXISTS" in reply.untagged and _recent(reply) == []
    # COPY into the selected mailbox: the copy is recent to the copying session.
    reply = await a.command("COPY 1 INBOX")
    reply.untagged += (await a.command("NOOP")).untagged
    assert b"* 4 EXISTS" in reply.untagged and _recent(reply) == [b"* 3 RECENT"]
    assert (await a.command("SEARCH RECENT")).untagged == [b"* SEARCH 1 2 4"]
    reply = await rev2.command("NOOP")
    assert b"* 4 EXISTS" in reply.untagged and _recent(reply) == []
    assert not any(b"\\Recent" in line for line in reply.untagged)
    for client in (status, rev2, viewer, a, b):
        await client.close()


async def test_subscription_outlives_its_mailbox(client: RawClient) -> None:
    """RFC 3501 6.3.6 / 6.3.9: a subscription stays when its mailbox is
    deleted; LSUB lists it ``\\Noselect`` (and an unsubscribed parent of a
    subscribed name for ``%``), LIST (SUBSCRIBED) as ``\\NonExistent
    \\Subscribed`` (RFC 5258 3, 5); UNSUBSCRIBE removes it, CREATE takes it
    over (issue 14)."""
    assert (await client.command("CREATE Klasse/7a")).status == "OK"
    assert (await client.command("UNSUBSCRIBE Klasse")).status == "OK"
    assert (await client.command("DELETE Klasse/7a")).status == "OK"
    reply = await client.command('LSUB "" "Klasse*"')
    assert reply.untagged == [b'* LSUB (\\Noselect) "/" "Klasse/7a"']
    reply = await client.command('LSUB "" "%"')
    assert b'* LSUB (\\Noselect) "/" "Klasse"' in reply.untagged
    reply = await client.command('LIST (SUBSCRIBED) "" "Klasse*"')
    assert reply.untagged == [b'* LIST (\\NonExistent \\Subscribed) "/" "Klasse/7a"']
    reply = await client.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Klasse"')
    assert len(reply.untagged) == 1 and b'"Klasse" ("CHILDINFO" ("SUBSCRIBED"))' in (
        reply.untagged[0])
    reply = await client.command('LIST "" "Klasse*"')
    assert reply.untagged == [b'* LIST (\\HasNoChildren) "/" "Klasse"']
    assert (await client.command("UNSUBSCRIBE Klasse/7a")).status == "OK"
    assert (await client.command('LSUB "" "Klasse*"')).untagged == []
    assert (await client.command("UNSUBSCRIBE Klasse/7a")).status == "NO"
    assert (await client.command("SUBSCRIBE Klasse")).status == "OK"
    assert (await client.command("DELETE Klasse")).status == "OK"
    assert (await client.command("CREATE Klasse")).status == "OK"
    reply = await client.command('LSUB "" "Klasse*"')
    assert reply.untagged == [b'* LSUB (\\HasNoChildren) "/" "Klasse"']
