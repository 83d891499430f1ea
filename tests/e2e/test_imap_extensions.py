"""End-to-end IMAP extension behaviour over loopback TLS with a raw client:
AUTHENTICATE PLAIN / SASL-IR, STARTTLS injection, LIST-EXTENDED and
LIST-STATUS, ESEARCH / SEARCHRES, CONDSTORE / QRESYNC, UIDPLUS, literals."""

from __future__ import annotations

import asyncio
import base64
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
    sample_message,
)


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Settings:
    return imap_settings(tmp_path / "school", database_url, max_literal_size=100_000)


@pytest.fixture
async def env(config: Settings) -> AsyncIterator[tuple[School, int]]:
    async with imap_school(config) as school:
        account_id = await make_account(school)
        for n in range(5):
            await deliver(school, account_id, sample_message(subject=f"m{n}"))
        yield school, account_id


@pytest.fixture
async def client(env: tuple[School, int], config: Settings) -> AsyncIterator[RawClient]:
    c = await RawClient.connect(imap_ports(env[0])[1], tls=client_tls(config))
    assert (await c.login()).status == "OK"
    yield c
    await c.close()


async def test_authenticate_plain_with_and_without_initial_response(
        env: tuple[School, int], config: Settings) -> None:
    token = base64.b64encode(b"\x00anna.schmidt\x00" + PASSWORD.encode()).decode()
    c = await RawClient.connect(imap_ports(env[0])[1], tls=client_tls(config))
    assert (await c.command(f"AUTHENTICATE PLAIN {token}")).status == "OK"
    await c.close()
    c = await RawClient.connect(imap_ports(env[0])[1], tls=client_tls(config))
    await c.send_raw(b"a1 AUTHENTICATE PLAIN\r\n")
    assert await c.read_line() == b"+ "
    bad = base64.b64encode(b"\x00anna.schmidt\x00falsch")
    await c.send_raw(bad + b"\r\n")
    assert (await c.finish(b"a1")).text.startswith("[AUTHENTICATIONFAILED]")
    await c.close()


async def test_starttls_drops_pipelined_commands(env: tuple[School, int],
                                                 config: Settings) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", imap_ports(env[0])[0])
    await reader.readline()
    # A man in the middle appends a command after STARTTLS (CVE-2011-0411 style).
    writer.write(b"a1 STARTTLS\r\na2 LOGIN anna.schmidt x\r\n")
    await writer.drain()
    assert (await reader.readline()).startswith(b"a1 OK")
    await writer.start_tls(client_tls(config))
    writer.write(b"a3 NOOP\r\n")
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 5)
    assert line.startswith(b"a3 OK"), line  # no answer to a2 ever came
    writer.close()


async def test_list_extended_and_list_status(client: RawClient) -> None:
    assert (await client.command('CREATE "Klasse/7a" (USE (\\Flagged))')).status == "OK"
    reply = await client.command('LIST (SPECIAL-USE) "" "*" RETURN (STATUS (MESSAGES UNSEEN))')
    assert b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"' in reply.untagged
    assert b'* STATUS "Sent" (MESSAGES 0 UNSEEN 0)' in reply.untagged
    assert not any(b'"INBOX"' in line for line in reply.untagged)
    reply = await client.command('LIST "" "%" RETURN (CHILDREN STATUS (MESSAGES))')
    assert b'* LIST (\\HasChildren) "/" "Klasse"' in reply.untagged
    assert b'* STATUS "INBOX" (MESSAGES 5)' in reply.untagged
    assert (await client.command('RENAME "Klasse" "Jahrgang"')).status == "OK"
    reply = await client.command('LIST "" "Jahrgang/*"')
    assert reply.untagged == [b'* LIST (\\HasNoChildren \\Flagged) "/" "Jahrgang/7a"']
    assert (await client.command("DELETE INBOX")).text.startswith("[CANNOT]")
    assert (await client.command("CREATE Sent")).text.startswith("[ALREADYEXISTS]")
    assert (await client.command("SELECT Nirgends")).text.startswith("[NONEXISTENT]")
    assert (await client.command("COPY 1 Nirgends")).status == "BAD"  # not selected
    await client.command("SELECT INBOX")
    assert (await client.command("COPY 1 Nirgends")).text.startswith("[TRYCREATE]")


async def test_esearch_and_searchres(client: RawClient) -> None:
    await client.command("SELECT INBOX")
    await client.command("STORE 2,4 +FLAGS (\\Flagged)")
    reply = await client.command("SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED")
    assert reply.untagged[-1].endswith(b"MIN 2 MAX 4 COUNT 2 ALL 2,4")
    assert (await client.command("UID SEARCH RETURN (SAVE) FLAGGED")).untagged == []
    reply = await client.command("FETCH $ (UID)")
    assert reply.untagged == [b"* 2 FETCH (UID 2)", b"* 4 FETCH (UID 4)"]
    reply = await client.command('SEARCH OR SUBJECT m1 SUBJECT m3')
    assert reply.untagged == [b"* SEARCH 2 4"]


async def test_condstore_unchangedsince_and_qresync(client: RawClient) -> None:
    assert (await client.command("ENABLE QRESYNC")).untagged == [b"* ENABLED QRESYNC"]
    select = await client.command("SELECT INBOX")
    validity = int(next(line for line in select.untagged if b"UIDVALIDITY" in line)
                   .split(b"UIDVALIDITY ")[1].split(b"]")[0])
    modseq = int(next(line for line in select.untagged if b"HIGHESTMODSEQ" in line)
                 .split(b"HIGHESTMODSEQ ")[1].split(b"]")[0])
    reply = await client.command(f"STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Deleted)")
    assert reply.status == "OK" and b"MODSEQ" in reply.untagged[0]
    reply = await client.command(f"STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Seen)")
    assert reply.text.startswith("[MODIFIED 1]")
    reply = await client.command("UID EXPUNGE 1")
    assert reply.untagged == [b"* VANISHED 1"]
    reply = await client.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert reply.untagged == [b"* VANISHED (EARLIER) 1"]
    await client.command("UNSELECT")
    reply = await client.command(f"SELECT INBOX (QRESYNC ({validity} {modseq}))")
    assert b"* VANISHED (EARLIER) 1" in reply.untagged


async def test_append_literals_toobig_and_appenduid(client: RawClient) -> None:
    message = sample_message("neu")
    reply = await client.command(f"APPEND Drafts (\\Draft) {{{len(message)}+}}\r\n"
                                 + message.decode())
    assert reply.status == "OK" and reply.text.startswith("[APPENDUID ")
    reply = await client.command("APPEND Drafts", literal=message)
    assert reply.text.split()[2] == "2]"
    too_big = await client.command("APPEND Drafts {200000}")
    assert too_big.status == "NO" and too_big.text.startswith("[TOOBIG]")
    assert (await client.command("NOOP")).status == "OK"


async def test_close_expunges_silently_and_rev2(client: RawClient) -> None:
    await client.command("SELECT INBOX")
    await client.command("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    reply = await client.command("CLOSE")
    assert reply.untagged == [] and reply.status == "OK"
    assert (await client.command("STATUS INBOX (MESSAGES)")).untagged == [
        b'* STATUS "INBOX" (MESSAGES 3)']
    await client.command("ENABLE IMAP4rev2")
    select = await client.command("EXAMINE INBOX")
    assert not any(b"RECENT" in line for line in select.untagged)
    assert (await client.command("SEARCH ALL")).untagged[0].endswith(b"ALL 1:3")
    assert (await client.command("STORE 1 +FLAGS (\\Seen)")).text.startswith("[READ-ONLY]")


async def test_sessions_are_confined_to_their_account(env: tuple[School, int],
                                                      config: Settings) -> None:
    school, _ = env
    other = await make_account(school, "bernd.meier")
    await deliver(school, other, sample_message("geheim"))
    c = await RawClient.connect(imap_ports(school)[1], tls=client_tls(config))
    await c.login("bernd.meier")
    reply = await c.command("SELECT INBOX")
    assert b"* 1 EXISTS" in reply.untagged
    await c.command("UID FETCH 1:* (UID)")
    assert (await c.command("UID FETCH 2:5 (BODY[])")).untagged == []
    await c.close()


async def test_server_survives_garbage(env: tuple[School, int], config: Settings) -> None:
    c = await RawClient.connect(imap_ports(env[0])[1], tls=client_tls(config))
    for junk in (b"\x00\xff\xfe garbage", b"a1 LOGIN {5}", b"* * *", b"a2 UID NOPE",
                 b"a3 FETCH"):
        await c.send_raw(junk + b"\r\n")
    await c.send_raw(b"xyz\r\n")  # completes the {5} literal of a1 as 5 octets
    lines = []
    with pytest.raises((TimeoutError, asyncio.TimeoutError)):
        while True:
            lines.append(await asyncio.wait_for(c.read_line(), 1))
    assert lines and all(b"BAD" in line or line.startswith(b"+") for line in lines)
    assert (await c.command("NOOP")).status == "OK"
    await c.close()



async def test_fast_state_fetch_equals_the_general_path(env: tuple[School, int],
                                                        client: RawClient) -> None:
    school, account_id = env
    store = school.mail_store
    for first in range(0, 600, 100):
        await asyncio.gather(*(store.append(account_id, "INBOX", sample_message(f"x{n}"),
                                            ("\\Seen",) if n % 2 else ("$Wichtig",))
                               for n in range(first, first + 100)))
    await client.command("SELECT INBOX")
    await client.command("STORE 7 +FLAGS (\\Flagged)")
    fast = await client.command("FETCH 1:* (UID FLAGS MODSEQ)")  # >= 500: one snapshot
    general = []
    for part in ("1:300", "301:*"):  # < 500 each: per-message records
        general += (await client.command(f"FETCH {part} (UID FLAGS MODSEQ)")).untagged
    assert len(fast.untagged) == 605
    assert fast.untagged == general
