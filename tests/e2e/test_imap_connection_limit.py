"""End-to-end: the IMAP per-IP connection limit (imap.max_connections_per_ip)
on loopback, over implicit TLS and STARTTLS, with real clients.

Over the limit a connection gets ``* BYE [UNAVAILABLE]`` instead of the
greeting and is closed; it is not counted, and every counted connection is
released exactly once when it ends (LOGOUT, client gone, autologout, stop)."""

from __future__ import annotations

import asyncio
import imaplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conf.app import School
from conf.settings import Settings
from mailserver.imap.server import ImapServer
from tests.mailserver.imap.session.helpers import (
    PASSWORD,
    RawClient,
    client_tls,
    imap_ports,
    imap_school,
    imap_settings,
    make_account,
)

LIMIT = 3
LOOPBACK = "127.0.0.1"
REFUSAL = b"* BYE [UNAVAILABLE] Too many connections from your address"


@pytest.fixture
def limit_settings(tmp_path: Path, database_url: str) -> Settings:
    return imap_settings(tmp_path / "school", database_url, max_connections_per_ip=LIMIT)


@pytest.fixture
async def limited(limit_settings: Settings) -> AsyncIterator[School]:
    async with imap_school(limit_settings) as school:
        await make_account(school)
        yield school


def _server(school: School) -> ImapServer:
    return next(s for s in school.services if isinstance(s, ImapServer))


async def _counted(server: ImapServer, expected: int) -> int:
    """The server's count for loopback once it reaches ``expected`` (or after
    a few seconds, whatever it is then: the assertion shows it)."""
    for _ in range(250):
        if server.connections_from(LOOPBACK) == expected:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)  # a second (double) release would land by now
    return server.connections_from(LOOPBACK)


async def _closed_by_server(client: RawClient) -> bool:
    return await asyncio.wait_for(client.reader.read(), 10) == b""


async def test_imaps_limit_refuses_then_accepts_after_logout(
        limited: School, limit_settings: Settings) -> None:
    server = _server(limited)
    port = imap_ports(limited)[1]
    tls = client_tls(limit_settings)
    clients = [await RawClient.connect(port, tls=tls) for _ in range(LIMIT)]
    try:
        for client in clients:
            assert client.greeting.startswith(b"* OK ")
            assert (await client.login()).status == "OK"
        assert await _counted(server, LIMIT) == LIMIT

        refused = await RawClient.connect(port, tls=tls)
        assert refused.greeting == REFUSAL
        assert await _closed_by_server(refused)
        await refused.close()
        assert await _counted(server, LIMIT) == LIMIT  # never counted, never released

        logout = await clients[0].command("LOGOUT")
        assert logout.status == "OK" and logout.untagged[0].startswith(b"* BYE")
        assert await _closed_by_server(clients[0])
        assert await _counted(server, LIMIT - 1) == LIMIT - 1

        again = await RawClient.connect(port, tls=tls)
        clients[0] = again
        assert again.greeting.startswith(b"* OK ")
        assert (await again.login()).status == "OK"
        assert (await again.command("SELECT INBOX")).status == "OK"
        assert await _counted(server, LIMIT) == LIMIT
    finally:
        for client in clients:
            await client.close()


async def test_starttls_port_refuses_in_plaintext_with_imaplib(
        limited: School, limit_settings: Settings) -> None:
    server = _server(limited)
    port = imap_ports(limited)[0]
    tls = client_tls(limit_settings)

    def open_session() -> imaplib.IMAP4:
        client = imaplib.IMAP4(LOOPBACK, port, timeout=20)
        client.starttls(tls)
        client.login("anna.schmidt", PASSWORD)
        client.select("INBOX")
        return client

    def refused_greeting() -> str:
        try:
            imaplib.IMAP4(LOOPBACK, port, timeout=20)
        except imaplib.IMAP4.error as error:  # BYE instead of OK: imaplib gives up
            return str(error)
        raise AssertionError("the connection over the limit was served")

    sessions = [await asyncio.to_thread(open_session) for _ in range(LIMIT)]
    try:
        assert await _counted(server, LIMIT) == LIMIT
        text = await asyncio.to_thread(refused_greeting)
        assert "UNAVAILABLE" in text and "Too many connections" in text

        # The refusal comes before any STARTTLS: plaintext BYE, then EOF.
        raw = await RawClient.connect(port)
        assert raw.greeting == REFUSAL
        assert await _closed_by_server(raw)
        await raw.close()
        assert await _counted(server, LIMIT) == LIMIT

        await asyncio.to_thread(sessions[0].logout)
        assert await _counted(server, LIMIT - 1) == LIMIT - 1
        sessions[0] = await asyncio.to_thread(open_session)
        assert await _counted(server, LIMIT) == LIMIT
    finally:
        for session in sessions:
            await asyncio.to_thread(session.shutdown)


async def test_limit_spans_both_listeners(limited: School, limit_settings: Settings) -> None:
    imap, imaps = imap_ports(limited)
    tls = client_tls(limit_settings)
    clients = [await RawClient.connect(imap), await RawClient.connect(imaps, tls=tls),
               await RawClient.connect(imap)]
    try:
        assert all(c.greeting.startswith(b"* OK ") for c in clients)
        for port, context in ((imaps, tls), (imap, None)):
            refused = await RawClient.connect(port, tls=context)
            assert refused.greeting == REFUSAL
            await refused.close()
    finally:
        for client in clients:
            await client.close()


async def test_client_drop_and_idle_timeout_each_release_once(
        tmp_path: Path, database_url: str) -> None:
    settings = imap_settings(tmp_path / "school", database_url,
                             max_connections_per_ip=LIMIT, idle_timeout_seconds=2.0)
    async with imap_school(settings) as school:
        server = _server(school)
        imap, imaps = imap_ports(school)

        # Client gone without LOGOUT: one slot back, the other connection still counted.
        first = await RawClient.connect(imaps, tls=client_tls(settings))
        second = await RawClient.connect(imap)
        assert await _counted(server, 2) == 2
        first.writer.transport.abort()
        assert await _counted(server, 1) == 1

        # Autologout after idle_timeout_seconds: the server says BYE and closes.
        line = await asyncio.wait_for(second.read_line(), 10)
        assert line.startswith(b"* BYE") and b"idle" in line
        assert await _closed_by_server(second)
        await second.close()
        assert await _counted(server, 0) == 0


async def test_stop_releases_every_connection(limit_settings: Settings) -> None:
    async with imap_school(limit_settings) as school:
        await make_account(school)
        server = _server(school)
        imaps = imap_ports(school)[1]
        held = [await RawClient.connect(imaps, tls=client_tls(limit_settings))
                for _ in range(LIMIT)]
        # One selected, one authenticated, one not authenticated.
        assert (await held[0].login()).status == "OK"
        assert (await held[0].command("SELECT INBOX")).status == "OK"
        assert (await held[1].login()).status == "OK"
        assert await _counted(server, LIMIT) == LIMIT
    assert server.connections_from(LOOPBACK) == 0
    assert server.connection_count == 0
    for client in held:
        assert (await client.read_line()).startswith(b"* BYE")
        await client.close()
