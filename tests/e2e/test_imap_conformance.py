"""IMAP conformance over loopback TLS (issue 14): the corner cases an
independent conformance run found, each checked against the RFC text named
in the test's docstring, with imaplib and a raw client."""

from __future__ import annotations

import asyncio
import imaplib
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
