"""The outbound SMTP client against a real aiosmtpd server on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from federation.smtp_out import (
    ClientConfig,
    ConnectionFailed,
    ConnectionLost,
    NextEnvelope,
    OutboundClient,
    Reply,
)
from tests.mailserver.outbound.sink import Sink, server_tls

MESSAGE = b"From: paul@a.test\r\nTo: anna@b.test\r\nSubject: Hallo\r\n\r\nText\r\n"
HOST = "mail.b.test"


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelining"])
async def tls_sink(tmp_path: Path, request: pytest.FixtureRequest,
                   ) -> AsyncIterator[tuple[Sink, Path]]:
    """A TLS sink, without and with PIPELINING: the results must be the same."""
    context, cert = server_tls(tmp_path, HOST)
    sink = await Sink(tls=context, hostname=HOST).start()
    sink.handler.pipelining = request.param
    yield sink, cert
    await sink.stop()


def client(port: int, **kwargs: object) -> OutboundClient:
    return OutboundClient(ClientConfig(helo_name="mail.a.test", port=port, timeout=5.0,
                                       **kwargs))  # type: ignore[arg-type]


async def test_starttls_verified_when_the_certificate_is_trusted(
        tls_sink: tuple[Sink, Path]) -> None:
    sink, cert = tls_sink
    connection = await client(sink.port, ca_file=str(cert)).connect(HOST, "127.0.0.1")
    result = await connection.send("paul@a.test", ["anna@b.test"], MESSAGE)
    await connection.close()
    assert result.tls.verified and result.tls.version in ("TLSv1.2", "TLSv1.3")
    assert result.tls.cipher
    assert result.delivered == ("anna@b.test",)
    assert result.recipients[0].reply.code == 250
    assert [m.tls for m in sink.messages] == [True]
    assert sink.messages[0].data.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n")


async def test_untrusted_certificate_still_encrypts_but_says_unverified(
        tls_sink: tuple[Sink, Path]) -> None:
    sink, _ = tls_sink
    connection = await client(sink.port).connect(HOST, "127.0.0.1")
    result = await connection.send("paul@a.test", ["anna@b.test"], MESSAGE)
    await connection.close()
    assert result.tls.encrypted and not result.tls.verified
    assert result.delivered == ("anna@b.test",)
    assert sink.messages[0].tls


async def test_wrong_host_name_is_unverified(tls_sink: tuple[Sink, Path]) -> None:
    sink, cert = tls_sink
    connection = await client(sink.port, ca_file=str(cert)).connect("other.test",
                                                                     "127.0.0.1")
    assert connection.tls.encrypted and not connection.tls.verified
    await connection.close()


async def test_plaintext_when_no_starttls_and_refused_if_tls_required() -> None:
    sink = await Sink().start()
    try:
        connection = await client(sink.port).connect(HOST, "127.0.0.1")
        result = await connection.send("paul@a.test", ["anna@b.test"], MESSAGE)
        await connection.close()
        assert not result.tls.encrypted
        assert result.delivered == ("anna@b.test",)
        assert sink.messages[0].tls is False
        with pytest.raises(ConnectionFailed, match="TLS required"):
            await client(sink.port, require_tls=True).connect(HOST, "127.0.0.1")
    finally:
        await sink.stop()


async def test_per_recipient_results(tls_sink: tuple[Sink, Path]) -> None:
    sink, _ = tls_sink
    sink.handler.rcpt_replies = {"gone@b.test": "550 5.1.1 no such user",
                                 "full@b.test": "452 4.2.2 mailbox full",
                                 "old@b.test": "553 mailbox name not allowed"}
    connection = await client(sink.port).connect(HOST, "127.0.0.1")
    result = await connection.send(
        "paul@a.test", ["anna@b.test", "gone@b.test", "full@b.test", "old@b.test"], MESSAGE)
    await connection.close()
    replies = {r.recipient: r.reply for r in result.recipients}
    assert replies["anna@b.test"].ok
    assert replies["gone@b.test"].permanent and replies["gone@b.test"].enhanced == "5.1.1"
    assert replies["full@b.test"].temporary and replies["full@b.test"].enhanced == "4.2.2"
    assert replies["old@b.test"].enhanced == "5.0.0"  # no enhanced code sent: derived
    assert replies["gone@b.test"].diagnostic == "550 5.1.1 no such user"
    assert [m.recipients for m in sink.messages] == [["anna@b.test"]]


async def test_data_refusal_applies_to_every_accepted_recipient(
        tls_sink: tuple[Sink, Path]) -> None:
    sink, _ = tls_sink
    sink.handler.data_reply = "554 5.7.1 rejected by policy"
    connection = await client(sink.port).connect(HOST, "127.0.0.1")
    result = await connection.send("paul@a.test", ["anna@b.test", "ben@b.test"], MESSAGE)
    sink.handler.data_reply = None
    again = await connection.send("paul@a.test", ["anna@b.test"], MESSAGE)  # after RSET
    await connection.close()
    assert [r.reply.code for r in result.recipients] == [554, 554]
    assert again.delivered == ("anna@b.test",)


async def test_one_connection_carries_many_messages(tls_sink: tuple[Sink, Path]) -> None:
    sink, _ = tls_sink
    outbound = client(sink.port)
    connection = await outbound.connect(HOST, "127.0.0.1")
    assert connection.pipelining == sink.handler.pipelining
    for i in range(5):
        result = await connection.send("paul@a.test", [f"r{i}@b.test"], MESSAGE)
        assert result.delivered == (f"r{i}@b.test",)
    await connection.close()
    assert len(sink.messages) == 5
    # The first connection of an untrusted host is dropped after the failed verification.
    assert sink.connections == outbound.connections_opened == 2


async def test_null_sender_and_utf8_addresses(tls_sink: tuple[Sink, Path]) -> None:
    sink, _ = tls_sink
    connection = await client(sink.port).connect(HOST, "127.0.0.1")
    await connection.send("", ["anna@b.test"], MESSAGE)
    result = await connection.send("paul@a.test", ["jürgen@b.test"], MESSAGE)
    await connection.close()
    assert sink.messages[0].mail_from == ""
    assert result.delivered == ("jürgen@b.test",)


async def test_refused_connection_fails_and_lost_connection_is_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionFailed):
        await client(port).connect(HOST, "127.0.0.1")

    async def greet_then_hang_up(reader: asyncio.StreamReader,
                                 writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hello\r\n")
        await reader.readline()
        writer.write(b"250 ok\r\n")
        await reader.readline()
        writer.close()

    server = await asyncio.start_server(greet_then_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        connection = await client(port).connect(HOST, "127.0.0.1")
        with pytest.raises(ConnectionLost):
            await connection.send("paul@a.test", ["anna@b.test"], MESSAGE)
    finally:
        server.close()
        await server.wait_closed()


def test_reply_enhanced_code_must_match_class() -> None:
    assert Reply(550, "4.1.1 mixed up").enhanced == "5.0.0"
    assert Reply(421, "closing").temporary and Reply(421, "x").enhanced == "4.0.0"
    assert Reply(250, "2.6.0 ok").enhanced == "2.6.0"


async def test_next_transaction_rides_behind_the_message_and_close_voids_it(
        tls_sink: tuple[Sink, Path]) -> None:
    """RFC 2920 3.1: the next MAIL, RCPT and DATA follow the message in the same write
    (with PIPELINING); a transaction opened that way and never sent is dropped with
    the connection, not ended with an empty message or a QUIT read as its text."""
    sink, _ = tls_sink
    ahead: list[bool] = []
    record = sink.handler.handle_DATA

    async def handle_data(server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.05)  # the rest of the client's write is in by now
        ahead.append(b"MAIL FROM:<paul@a.test>" in bytes(server._reader._buffer))
        return await record(server, session, envelope)

    sink.handler.handle_DATA = handle_data  # type: ignore[method-assign]
    connection = await client(sink.port).connect(HOST, "127.0.0.1")
    envelopes = [NextEnvelope("paul@a.test", (f"r{i}@b.test",), False) for i in range(3)]
    for i in range(2):
        result = await connection.send("paul@a.test", [f"r{i}@b.test"], MESSAGE,
                                       envelopes[i + 1])
        assert result.delivered == (f"r{i}@b.test",)
    # r2's transaction was opened and its message never came: a QUIT would wait for a
    # reply the server (reading message text) never gives.
    await asyncio.wait_for(connection.close(), 1.0)
    await asyncio.sleep(0.2)
    assert [m.recipients for m in sink.messages] == [["r0@b.test"], ["r1@b.test"]]
    assert ahead == [sink.handler.pipelining] * 2
