"""CHUNKING (RFC 3030 2): the message as BDAT chunks instead of a DATA section.

``BDAT <chunk-size> [LAST]`` is followed at once by exactly chunk-size octets
of message, no dot-stuffing, no end marker; each chunk gets its own reply
and the LAST one gets the message's.  What makes it different from DATA:

* the octets always follow, so even a refused BDAT must read and discard
  them before answering (RFC 3030 2: "MUST accept and discard the associated
  message data before sending the appropriate 5XX or 4XX code"), or they
  would be read as commands;
* a BDAT whose chunk size cannot be read leaves the stream without a known
  end: the only safe answer is to close the connection;
* once a chunk of a transaction failed, the rest of its chunks are refused
  (503) until RSET or a new transaction (the client MUST NOT send more).

The parser and the transaction's bookkeeping are pure (tested with
hypothesis); ``read_chunk`` is the one place that touches the stream.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

# RFC 3030 2: bdat-cmd ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF;
# chunk-size ::= 1*DIGIT, end-marker ::= "LAST".  More than 20 digits is no
# chunk any server would take; refusing it keeps the number bounded.
_ARGUMENT = re.compile(r"([0-9]{1,20})(?: (LAST))?", re.IGNORECASE)

READ_PIECE = 1 << 20  # discarded or kept in pieces: a huge chunk never sits in memory whole


class BdatSyntaxError(ValueError):
    """The BDAT argument is not ``chunk-size [LAST]``: the stream cannot be followed."""


@dataclass(frozen=True)
class BdatCommand:
    size: int
    last: bool


def parse_bdat_argument(argument: str | None) -> BdatCommand:
    """``chunk-size [LAST]`` (RFC 3030 2), or raise BdatSyntaxError."""
    match = _ARGUMENT.fullmatch(argument or "")
    if match is None:
        raise BdatSyntaxError(f"not a BDAT argument: {argument!r}")
    return BdatCommand(int(match.group(1)), match.group(2) is not None)


@dataclass
class ChunkedMessage:
    """The chunks of one transaction so far (``size_limit``: the SIZE limit, 0: none).

    Once ``failed``, the chunks are dropped and the transaction takes no more.
    """

    size_limit: int
    size: int = 0
    failed: bool = False
    _parts: list[bytes] = field(default_factory=list)

    def fits(self, chunk_size: int) -> bool:
        return not self.size_limit or self.size + chunk_size <= self.size_limit

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._parts.append(chunk)

    def fail(self) -> None:
        self.failed = True
        self._parts.clear()

    def content(self) -> bytes:
        return b"".join(self._parts)


async def read_chunk(reader: asyncio.StreamReader, size: int, *, keep: bool) -> bytes:
    """Exactly ``size`` octets from ``reader``: returned if ``keep``, else discarded
    as they arrive.  Raises asyncio.IncompleteReadError if the client hangs up."""
    pieces: list[bytes] = []
    remaining = size
    while remaining:
        piece = await reader.readexactly(min(remaining, READ_PIECE))
        remaining -= len(piece)
        if keep:
            pieces.append(piece)
    return b"".join(pieces)
