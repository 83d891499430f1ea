"""CHUNKING pieces: the BDAT argument parser, chunk bookkeeping, reading exact octets."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailserver.smtp import chunking
from mailserver.smtp.chunking import (
    BdatCommand,
    BdatSyntaxError,
    ChunkedMessage,
    parse_bdat_argument,
    read_chunk,
)


@pytest.mark.parametrize(("argument", "command"), [
    ("0", BdatCommand(0, False)), ("10 LAST", BdatCommand(10, True)),
    ("10 last", BdatCommand(10, True)), ("007", BdatCommand(7, False)),
    ("0 LAST", BdatCommand(0, True)),
])
def test_parses_chunk_size_and_last(argument: str, command: BdatCommand) -> None:
    assert parse_bdat_argument(argument) == command


@pytest.mark.parametrize("argument", [
    None, "", " 10", "10 ", "10  LAST", "-1", "+5", "1e3", "10 LASTX", "10 FIRST", "ten",
    "1" * 21, "10\tLAST", "10 LAST extra", "١٠",
])
def test_refuses_anything_else(argument: str | None) -> None:
    with pytest.raises(BdatSyntaxError):
        parse_bdat_argument(argument)


@given(st.integers(min_value=0, max_value=10**20 - 1), st.booleans())
def test_round_trip(size: int, last: bool) -> None:
    assert parse_bdat_argument(f"{size}{' LAST' if last else ''}") == BdatCommand(size, last)


@given(st.text(max_size=30))
def test_arbitrary_text_parses_or_raises_the_one_error(argument: str) -> None:
    try:
        command = parse_bdat_argument(argument)
    except BdatSyntaxError:
        return
    assert command.size >= 0
    assert argument.split(" ")[0].isascii() and argument.split(" ")[0].isdigit()


def test_chunks_within_the_limit_and_failure() -> None:
    message = ChunkedMessage(size_limit=10)
    assert message.fits(6)
    message.add(b"abcdef")
    assert message.fits(4) and not message.fits(5)
    message.add(b"ghij")
    assert message.content() == b"abcdefghij" and message.size == 10
    message.fail()
    assert message.failed and message.content() == b""
    assert ChunkedMessage(size_limit=0).fits(10**12)  # 0: no limit


async def _reader_with(pieces: list[bytes]) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for piece in pieces:
        reader.feed_data(piece)
    return reader


@given(st.binary(max_size=3000), st.lists(st.integers(min_value=1, max_value=700), max_size=8),
       st.binary(max_size=20), st.booleans())
def test_read_chunk_takes_exactly_its_octets(data: bytes, cuts: list[int], after: bytes,
                                             keep: bool) -> None:
    """However the bytes arrive, the chunk is exactly ``size`` octets; the rest stays."""
    stream = data + after
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(stream[start:start + cut])
        start += cut
    pieces.append(stream[start:])

    async def run() -> tuple[bytes, bytes]:
        reader = await _reader_with([p for p in pieces if p])
        reader.feed_eof()
        chunk = await read_chunk(reader, len(data), keep=keep)
        return chunk, await reader.read()

    chunk, rest = asyncio.run(run())
    assert chunk == (data if keep else b"")
    assert rest == after


async def test_large_chunks_are_read_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunking, "READ_PIECE", 4)
    reader = await _reader_with([b"0123456789NEXT"])
    assert await read_chunk(reader, 10, keep=True) == b"0123456789"
    assert await reader.readexactly(4) == b"NEXT"


async def test_a_client_that_hangs_up_mid_chunk() -> None:
    reader = await _reader_with([b"short"])
    reader.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError):
        await read_chunk(reader, 10, keep=False)
