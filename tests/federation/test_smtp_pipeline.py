"""PIPELINING (RFC 2920) in the outbound client: the reply parser, dot-stuffing, and
a scripted server that only answers once MAIL, RCPT and DATA have all arrived."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.smtp_out import ClientConfig, OutboundClient
from federation.smtp_pipeline import ParsedReply, ReplyError, ReplyParser, dot_stuffed
from tests.support.properties import examples

_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
_reply = st.builds(ParsedReply, st.integers(200, 599),
                   st.lists(_text, min_size=1, max_size=4).map(tuple))


def render(reply: ParsedReply) -> bytes:
    *more, last = reply.lines
    return b"".join(f"{reply.code}-{line}\r\n".encode() for line in more) + \
        f"{reply.code} {last}\r\n".encode()


@settings(max_examples=examples(200), deadline=None)
@given(replies=st.lists(_reply, max_size=8), cuts=st.lists(st.integers(0, 2000), max_size=10))
def test_replies_come_out_whatever_the_segments(replies: list[ParsedReply],
                                                cuts: list[int]) -> None:
    wire = b"".join(render(r) for r in replies)
    points = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
    parser = ReplyParser()
    parsed: list[ParsedReply] = []
    for start, end in itertools.pairwise(points):
        parsed += parser.feed(wire[start:end])
    assert parsed == replies


def test_reply_forms() -> None:
    parser = ReplyParser()
    assert parser.feed(b"250\r\n354 go on\n") == [ParsedReply(250, ("",)),
                                                   ParsedReply(354, ("go on",))]
    assert parser.feed(b"250-mx.b.test\r\n250-PIPELINING\r\n") == []
    assert parser.feed(b"250 HELP\r\n") == [
        ParsedReply(250, ("mx.b.test", "PIPELINING", "HELP"))]


@pytest.mark.parametrize("wire", [b"hello\r\n", b"25\r\n", b"250x\r\n", b"650 no\r\n",
                                  b"250-a\r\n251 b\r\n", b"2" * 5000])
def test_garbage_is_refused(wire: bytes) -> None:
    with pytest.raises(ReplyError):
        ReplyParser().feed(wire)


def unstuffed(payload: bytes) -> bytes:
    assert payload.endswith(b"\r\n.\r\n") or payload == b".\r\n"
    lines = payload[:-3].split(b"\r\n")
    assert all(line != b"." for line in lines)  # no early end of data
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@settings(max_examples=examples(300), deadline=None)
@given(message=st.lists(st.sampled_from([b"a", b".", b"..", b"\r\n", b"\n", b"\r", b" ",
                                         b"\xc3\xa4"]), max_size=30).map(b"".join))
def test_dot_stuffing_round_trips(message: bytes) -> None:
    """What the server takes back out (RFC 5321 4.5.2) is the message with CRLF ends."""
    normal = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if normal and not normal.endswith(b"\r\n"):
        normal += b"\r\n"
    assert unstuffed(dot_stuffed(message)) == normal


class ScriptedMx(asyncio.Protocol):
    """Answers EHLO with PIPELINING, then waits for MAIL, RCPT, RCPT and DATA
    *together* before answering them at once: a client that waits for each reply
    would wait forever."""

    def __init__(self, log: list[bytes]) -> None:
        self.log = log
        self.buffer = b""
        self.state = "commands"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 mx.b.test ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.state == "data":
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                self.log.append(self.buffer[:end + 5])
                self.buffer = self.buffer[end + 5:]
                self.transport.write(b"250 2.0.0 queued\r\n")
                self.state = "commands"
                continue
            lines = self.buffer.split(b"\r\n")
            complete, rest = lines[:-1], lines[-1]
            if not complete:
                return
            first = complete[0].upper()
            if first.startswith(b"EHLO"):
                self.transport.write(b"250-mx.b.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif first.startswith(b"QUIT"):
                self.transport.write(b"221 bye\r\n")
                self.transport.close()
            elif first.startswith(b"MAIL"):
                if len(complete) < 4:
                    return  # not all of them yet: no reply
                self.log.append(b"|".join(complete[:4]))
                self.transport.write(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n"
                                     b"550 5.1.1 no such user\r\n354 go on\r\n")
                self.buffer = b"\r\n".join([*complete[4:], rest])
                self.state = "data"
                continue
            else:
                self.transport.write(b"500 what\r\n")
            self.buffer = b"\r\n".join([*complete[1:], rest])


async def test_commands_go_together_and_replies_that_arrive_together_are_read() -> None:
    log: list[bytes] = []
    server = await asyncio.get_running_loop().create_server(lambda: ScriptedMx(log),
                                                            "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = OutboundClient(ClientConfig(helo_name="mail.a.test", port=port, timeout=5.0))
    try:
        connection = await client.connect("mx.b.test", "127.0.0.1")
        assert connection.pipelining
        message = b"Subject: x\r\n\r\n.dot first\r\nend\r\n"
        for _ in range(2):
            result = await connection.send("paul@a.test", ["anna@b.test", "gone@b.test"],
                                           message)
            replies = {r.recipient: r.reply for r in result.recipients}
            assert replies["anna@b.test"].code == 250
            assert replies["gone@b.test"].diagnostic == "550 5.1.1 no such user"
        await connection.close()
    finally:
        server.close()
        await server.wait_closed()
    commands = (b"MAIL FROM:<paul@a.test>|RCPT TO:<anna@b.test>|RCPT TO:<gone@b.test>|DATA")
    stuffed = b"Subject: x\r\n\r\n..dot first\r\nend\r\n.\r\n"
    assert log == [commands, stuffed, commands, stuffed]
