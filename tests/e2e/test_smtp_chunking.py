"""CHUNKING (RFC 3030) end to end: BDAT over a real socket into the real mail store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conf.app import School
from conf.settings import Settings, SmtpSettings
from directory.model import Role
from mailserver.smtp import ListenerKind, SmtpService
from mailserver.store import MailboxNotFound
from tests.support.schools import make_settings
from tests.support.smtp_clients import RawClient, RawReply, smtp_service

OUTSIDE = "someone@outside.example"
SIZE_LIMIT = 50_000
# Lines that DATA would treat specially: BDAT carries them as they are.
MESSAGE = (b"From: someone@outside.example\r\nTo: anna@schule.test\r\nSubject: chunks\r\n\r\n"
           b".a line that starts with a dot\r\n.\r\n..\r\nMAIL FROM:<smuggled@evil.example>\r\n"
           b"last line\r\n")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "school", database_url,
                         smtp=SmtpSettings(max_message_size=SIZE_LIMIT, max_errors=10))


@pytest.fixture
async def mx(school: School) -> AsyncIterator[tuple[School, SmtpService, int]]:
    anna = await school.directory.create_account(role=Role.TEACHER, login="anna")
    async with smtp_service(school) as service:
        yield school, service, anna.id


async def inbox(school: School, account_id: int) -> list[bytes]:
    try:
        return [m.body for m in await school.mail_store.read_mailbox(account_id)]
    except MailboxNotFound:
        return []


async def connect(service: SmtpService) -> RawClient:
    client = await RawClient.connect(*service.addresses[ListenerKind.MX])
    assert (await client.reply()).code == 220
    ehlo = await client.command("EHLO client.test")
    assert "250-CHUNKING" in ehlo.lines or "250 CHUNKING" in ehlo.lines
    return client


async def envelope(client: RawClient) -> None:
    assert (await client.command(f"MAIL FROM:<{OUTSIDE}>")).code == 250
    assert (await client.command("RCPT TO:<anna@schule.test>")).code == 250


def bdat(chunk: bytes, last: bool = False) -> bytes:
    return f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode() + chunk


async def send_chunk(client: RawClient, chunk: bytes, last: bool = False) -> RawReply:
    await client.send(bdat(chunk, last))
    return await client.reply()


async def test_a_message_in_pipelined_chunks_is_stored_octet_for_octet(mx) -> None:
    school, service, anna = mx
    client = await connect(service)
    await envelope(client)
    # Cut inside a CRLF, right before a dot line, and an empty chunk before LAST.
    cuts = [MESSAGE[:40], MESSAGE[40:73], MESSAGE[73:], b""]
    await client.send(b"".join(bdat(c, last=i == len(cuts) - 1) for i, c in enumerate(cuts)))
    replies = [await client.reply() for _ in cuts]
    assert [r.lines[0] for r in replies[:-1]] == [
        f"250 2.0.0 {len(c)} octets received" for c in cuts[:-1]]
    assert replies[-1].lines[0].startswith("250 2.0.0 OK queued as")
    (stored,) = await inbox(school, anna)
    assert stored.endswith(MESSAGE)  # no dot-unstuffing, nothing lost at the cuts
    assert b"Received: from client.test" in stored
    assert (await client.command("NOOP")).code == 250  # the smuggled line was only data
    await client.close()


async def test_refused_chunks_are_read_and_discarded_not_run_as_commands(mx) -> None:
    school, service, anna = mx
    client = await connect(service)
    chunk = b"RSET\r\nMAIL FROM:<x@evil.example>\r\nRCPT TO:<anna@schule.test>\r\n"
    reply = await send_chunk(client, chunk, last=True)  # before MAIL
    assert reply.lines[0].startswith("503 5.5.1")
    assert (await client.command(f"MAIL FROM:<{OUTSIDE}>")).code == 250
    reply = await send_chunk(client, chunk)  # before RCPT
    assert reply.lines[0].startswith("503 5.5.1")
    assert (await client.command("NOOP")).code == 250
    await client.close()
    assert await inbox(school, anna) == []


async def test_data_after_bdat_and_rset_in_between(mx) -> None:
    school, service, anna = mx
    client = await connect(service)
    await envelope(client)
    assert (await send_chunk(client, b"Subject: x\r\n")).code == 250
    assert (await client.command("DATA")).lines[0].startswith("503 5.5.1")
    assert (await client.command("RSET")).code == 250  # drops the chunk
    await envelope(client)
    reply = await send_chunk(client, b"Subject: y\r\n\r\nbody\r\n", last=True)
    assert reply.lines[0].startswith("250 2.0.0 OK")
    (stored,) = await inbox(school, anna)
    assert b"Subject: y" in stored and b"Subject: x" not in stored
    await client.close()


async def test_too_much_data_fails_the_rest_of_the_transaction(mx) -> None:
    school, service, anna = mx
    client = await connect(service)
    await envelope(client)
    big = b"x" * 998 + b"\r\n"
    chunk = b"Subject: big\r\n\r\n" + big * (SIZE_LIMIT // len(big) + 1)
    reply = await send_chunk(client, chunk)
    assert reply.lines[0].startswith("552 5.3.4")
    reply = await send_chunk(client, b"more\r\n", last=True)
    assert reply.lines[0].startswith("503 5.5.1")
    assert (await client.command("RSET")).code == 250
    await envelope(client)
    reply = await send_chunk(client, b"Subject: ok\r\n\r\nfine\r\n", last=True)
    assert reply.lines[0].startswith("250 2.0.0 OK")
    (stored,) = await inbox(school, anna)
    assert b"Subject: ok" in stored
    await client.close()


async def test_content_checks_apply_to_chunks_too(mx) -> None:
    """A bare LF (the SMTP smuggling shape) and NUL are refused as with DATA."""
    school, service, anna = mx
    client = await connect(service)
    for body in (b"Subject: x\r\n\r\nline\n.\nmore\r\n", b"Subject: x\r\n\r\na\x00b\r\n"):
        await envelope(client)
        reply = await send_chunk(client, body, last=True)
        assert reply.lines[0].startswith("550"), reply.lines
    await client.close()
    assert await inbox(school, anna) == []


async def test_a_bdat_without_a_readable_size_closes_the_connection(mx) -> None:
    _, service, _ = mx
    client = await connect(service)
    await envelope(client)
    reply = await client.command("BDAT ten LAST")
    assert reply.lines[0].startswith("501 5.5.4")
    assert await client.closed()


async def test_a_client_gone_mid_chunk_leaves_nothing(mx) -> None:
    school, service, anna = mx
    client = await connect(service)
    await envelope(client)
    await client.send(b"BDAT 1000 LAST\r\nSubject: cut\r\n\r\nonly part")
    await client.close()
    client = await connect(service)  # the server is fine and stored nothing
    assert (await client.command("NOOP")).code == 250
    await client.close()
    assert await inbox(school, anna) == []


async def test_a_chunk_far_beyond_the_size_limit_closes_in_any_state(mx) -> None:
    """Fuzz finding: ``BDAT 1000000000000 LAST`` before MAIL was refused with 503 and then
    read to be discarded, for as long as the client kept sending.  A chunk more than
    twice the message size limit is never read: 552 and the connection closes."""
    _, service, _ = mx
    for with_envelope in (False, True):
        client = await connect(service)
        if with_envelope:
            await envelope(client)
        reply = await client.command("BDAT 1000000000000 LAST")
        assert reply.lines[0].startswith("552"), reply.lines
        assert await client.closed()
