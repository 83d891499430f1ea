"""The bulk DATA reader against a line-by-line model of aiosmtpd's ``smtp_DATA`` loop."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailserver.smtp.data import DataAccumulator, DataState, read_data
from tests.support.properties import examples

LIMIT = 40  # stream limit = line limit, as SchulhofSMTP sets them


async def aiosmtpd_model(reader: asyncio.StreamReader, size_limit: int,
                         line_limit: int) -> tuple[DataState, bytes]:
    """aiosmtpd 1.4 ``SMTP.smtp_DATA``'s reading loop, restated."""
    data: list[bytearray] = []
    num_bytes = 0
    fragments: list[bytes] = []
    state = DataState.NOMINAL
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as e:
            if state is DataState.NOMINAL:
                state = DataState.TOO_LONG
            data *= 0
            line = await reader.read(e.consumed)
        if not fragments and line == b".\r\n":
            break
        num_bytes += len(line)
        if state is DataState.NOMINAL and size_limit and num_bytes > size_limit:
            state = DataState.TOO_MUCH
            data *= 0
        fragments.append(line)
        if line.endswith(b"\r\n"):
            if state is DataState.NOMINAL:
                joined = bytearray().join(fragments)
                if len(joined) > line_limit:
                    state = DataState.TOO_LONG
                    data *= 0
                else:
                    data.append(joined)
            fragments *= 0
    for text in data:
        if text.startswith(b"."):
            del text[0]
    return state, b"".join(data)


async def feed_and_read(pieces: list[bytes], reading, limit: int = LIMIT):
    """Run ``reading(reader)`` while ``pieces`` arrive one by one; also return what is left."""
    reader = asyncio.StreamReader(limit=limit)
    task = asyncio.ensure_future(reading(reader))
    for piece in pieces:
        reader.feed_data(piece)
        await asyncio.sleep(0)
    reader.feed_eof()
    result = await asyncio.wait_for(task, 5)
    return result, await reader.read()


async def bulk(reader: asyncio.StreamReader, size_limit: int,
               limit: int = LIMIT) -> tuple[DataState, bytes]:
    accumulator = DataAccumulator(size_limit, limit, limit)
    await read_data(reader, accumulator)
    return accumulator.state, accumulator.content() \
        if accumulator.state is DataState.NOMINAL else b""


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# Lines built from the bytes that matter: dots, CR, LF, and ordinary text.
line_text = st.lists(st.sampled_from([b".", b"\r", b"\n", b"a", b"..", b"xyz" * 7]),
                     max_size=12).map(b"".join)


@settings(max_examples=examples(300), deadline=None)
@given(lines=st.lists(line_text, max_size=15), after=st.sampled_from([b"", b"QUIT\r\n"]),
       cuts=st.lists(st.integers(0, 10_000), max_size=6),
       size_limit=st.sampled_from([0, 30, 200]))
async def test_bulk_reader_matches_aiosmtpd(lines: list[bytes], after: bytes,
                                            cuts: list[int], size_limit: int) -> None:
    stream = b"".join(line + b"\r\n" for line in lines) + b".\r\n" + after
    pieces = split(stream, cuts)
    expected, expected_left = await feed_and_read(
        pieces, lambda r: aiosmtpd_model(r, size_limit, LIMIT))
    got, left = await feed_and_read(pieces, lambda r: bulk(r, size_limit))
    if expected[0] is not DataState.NOMINAL:
        expected = (expected[0], b"")
    assert got == expected
    assert left == expected_left  # a line "." ends DATA early, in both


@settings(max_examples=examples(200), deadline=None)
@given(lines=st.lists(line_text.filter(lambda line: b"\r\n" not in line), max_size=15),
       cuts=st.lists(st.integers(0, 10_000), max_size=6))
async def test_stuffed_lines_come_back_unchanged(lines: list[bytes], cuts: list[int]) -> None:
    # What a client sends (RFC 5321 4.5.2): a dot added before every line starting with one.
    sent = b"".join((b"." if line.startswith(b".") else b"") + line + b"\r\n"
                    for line in lines)
    (state, got), left = await feed_and_read(split(sent + b".\r\nQUIT\r\n", cuts),
                                             lambda r: bulk(r, 0, 10_000), limit=10_000)
    assert (state, got, left) == (DataState.NOMINAL,
                                  b"".join(line + b"\r\n" for line in lines), b"QUIT\r\n")


@pytest.mark.parametrize(("stream", "content"), [
    (b".\r\n", b""),
    (b"..\r\n.\r\n", b".\r\n"),
    (b"a\r\n..b\r\n...\r\n.\r\n", b"a\r\n.b\r\n..\r\n"),
    (b"a\n.\r\nb\r\n.\r\n", b"a\n.\r\nb\r\n"),  # a bare LF does not end a line
])
async def test_end_marker_and_dot_stuffing(stream: bytes, content: bytes) -> None:
    (state, got), left = await feed_and_read([stream], lambda r: bulk(r, 0))
    assert (state, got, left) == (DataState.NOMINAL, content, b"")


async def test_limits() -> None:
    long_line = b"x" * (LIMIT * 3) + b"\r\n"
    (state, _), left = await feed_and_read([b"ok\r\n", long_line, b".\r\nNOOP\r\n"],
                                           lambda r: bulk(r, 0))
    assert state is DataState.TOO_LONG and left == b"NOOP\r\n"
    (state, _), _ = await feed_and_read([b"12345678\r\n" * 5 + b".\r\n"],
                                        lambda r: bulk(r, 30))
    assert state is DataState.TOO_MUCH


@pytest.mark.parametrize("length", [LIMIT - 3, LIMIT - 2, LIMIT - 1, LIMIT, LIMIT + 1, LIMIT + 5])
@pytest.mark.parametrize("size_limit", [0, 30])
async def test_which_limit_wins_at_the_edges(length: int, size_limit: int) -> None:
    # A line near the line limit that also crosses the size limit: aiosmtpd checks the
    # size first unless the line overran the stream limit before it was complete.
    pieces = [b"y" * length + b"\r\n.\r\n"]
    expected, _ = await feed_and_read(pieces, lambda r: aiosmtpd_model(r, size_limit, LIMIT))
    got, _ = await feed_and_read(pieces, lambda r: bulk(r, size_limit))
    assert got[0] is expected[0]
