"""Sequence sets: RFC 9051 9 (``sequence-set``), RFC 3501 9, RFC 5182 (``$``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailserver.imap.wire.errors import ParseError

# None stands for "*": the largest number in use (RFC 9051 9, seq-number).
SeqNumber = int | None

_NUMBER = re.compile(rb"[1-9][0-9]{0,9}")
# Sequence and UID numbers are 32-bit unsigned (RFC 9051 9, nz-number).
MAX_NUMBER = 4294967295


@dataclass(frozen=True)
class SequenceSet:
    """A parsed ``sequence-set``.

    ``ranges`` keeps the client's order; a single number ``n`` is the range
    ``(n, n)`` and ``*`` is ``None``. A range may be written in either order
    (RFC 9051 9: "2:4" and "4:2" are equivalent). ``saved`` is the SEARCHRES
    marker ``$`` (RFC 5182 2.1), which stands alone and has no ranges.
    """

    ranges: tuple[tuple[SeqNumber, SeqNumber], ...] = ()
    saved: bool = False

    @classmethod
    def saved_result(cls) -> SequenceSet:
        """The ``$`` set (RFC 5182)."""
        return cls((), saved=True)

    @classmethod
    def all(cls) -> SequenceSet:
        """``1:*``."""
        return cls(((1, None),))

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> SequenceSet:
        """The shortest set of ranges covering ``numbers`` (for responses)."""
        ordered = sorted(set(numbers))
        ranges: list[tuple[SeqNumber, SeqNumber]] = []
        for number in ordered:
            if number < 1:
                raise ValueError("sequence numbers start at 1")
            if ranges and ranges[-1][1] == number - 1:
                ranges[-1] = (ranges[-1][0], number)
            else:
                ranges.append((number, number))
        return cls(tuple(ranges))

    def _bounds(self, largest: int) -> Iterable[tuple[int, int]]:
        for first, last in self.ranges:
            low = largest if first is None else first
            high = largest if last is None else last
            if low > high:
                low, high = high, low
            yield low, high

    def expand(self, largest: int, saved: Iterable[int] | None = None) -> list[int]:
        """The sorted numbers of the set that are at most ``largest``.

        ``largest`` is the message count (sequence numbers) or the highest
        UID in use (UID sets; the caller intersects with existing UIDs).
        ``*`` is ``largest`` (RFC 9051 9). ``$`` expands to ``saved``, the
        last saved search result, or to nothing when none is saved.
        """
        if self.saved:
            return sorted({n for n in (saved or ()) if 1 <= n <= largest})
        result: set[int] = set()
        for low, high in self._bounds(largest):
            if largest < 1:
                continue
            result.update(range(max(low, 1), min(high, largest) + 1))
        return sorted(result)

    def contains(self, number: int, largest: int) -> bool:
        """Whether ``number`` (1 <= number <= largest) is in the set."""
        if self.saved or not 1 <= number <= largest:
            return False
        return any(low <= number <= high for low, high in self._bounds(largest))

    def __str__(self) -> str:
        if self.saved:
            return "$"
        parts = []
        for first, last in self.ranges:
            left = "*" if first is None else str(first)
            right = "*" if last is None else str(last)
            parts.append(left if first == last else f"{left}:{right}")
        return ",".join(parts)

    def __bytes__(self) -> bytes:
        return str(self).encode("ascii")


def parse_sequence_set(token: bytes, *, allow_saved: bool = True) -> SequenceSet:
    """Parse one ``sequence-set`` atom (RFC 9051 9) or ``$`` (RFC 5182)."""
    if token == b"$":
        if not allow_saved:
            raise ParseError("$ not allowed here")
        return SequenceSet.saved_result()
    if not token:
        raise ParseError("empty sequence set")
    ranges: list[tuple[SeqNumber, SeqNumber]] = []
    for element in token.split(b","):
        ends = element.split(b":")
        if len(ends) > 2:
            raise ParseError("invalid sequence range")
        numbers = [_seq_number(end) for end in ends]
        ranges.append((numbers[0], numbers[-1]))
    return SequenceSet(tuple(ranges))


def _seq_number(raw: bytes) -> SeqNumber:
    if raw == b"*":
        return None
    if not _NUMBER.fullmatch(raw):
        raise ParseError("invalid sequence number")
    value = int(raw)
    if value > MAX_NUMBER:
        raise ParseError("sequence number out of range")
    return value
