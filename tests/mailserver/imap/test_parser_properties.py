"""Property tests of the framer and parser (RFC 9051 4.3 literals, RFC 9051 9)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailserver.imap.wire import (
    CommandFramer,
    CommandUnit,
    ContinuationRequest,
    FramingFailure,
    LiteralTooBig,
    ParseError,
    parse_command,
    parse_line,
)
from mailserver.imap.wire.client import serialize_command
from mailserver.imap.wire.mutf7 import decode_mutf7, encode_mutf7
from mailserver.imap.wire.sequence import SequenceSet, parse_sequence_set
from tests.mailserver.imap.strategies import sequence_sets, tagged_commands
from tests.support.properties import examples

SETTINGS = settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow],
                    deadline=None)


def _parse_all(data: bytes, utf8: bool = False) -> None:
    framer = CommandFramer(max_line_length=200, max_literal_size=100)
    for event in framer.feed(data):
        if isinstance(event, CommandUnit):
            try:
                parse_command(event, utf8=utf8)
            except ParseError:
                pass


@SETTINGS
@given(st.binary(max_size=400), st.booleans())
def test_arbitrary_bytes_only_raise_parse_error(data: bytes, utf8: bool) -> None:
    _parse_all(data, utf8)


@SETTINGS
@given(tagged_commands, st.data())
def test_mutated_commands_only_raise_parse_error(command, data) -> None:
    # Arbitrary bytes rarely reach deep grammar; damaged valid commands do.
    raw = bytearray(serialize_command(command, literal_plus=True))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = data.draw(st.sampled_from(b' ()[]{}<>"\\*%$:,.~+0123456789\r\nAZaz\x00\xff'))
        if action == "insert":
            raw[position:position] = bytes([byte])
        elif position < len(raw):
            raw[position:position + 1] = b"" if action == "delete" else bytes([byte])
    _parse_all(bytes(raw))


@SETTINGS
@given(st.lists(st.tuples(st.lists(st.binary(max_size=30), min_size=1, max_size=3),
                          st.booleans()), max_size=3))
def test_arbitrary_units_only_raise_parse_error(units) -> None:
    for segments, utf8 in units:
        literals = [b"x" * 3 for _ in segments[1:]]
        try:
            parse_command(CommandUnit(tuple(segments), tuple(literals)), utf8=utf8)
        except ParseError:
            pass


@SETTINGS
@given(tagged_commands, st.booleans())
def test_command_round_trip(command, utf8: bool) -> None:
    raw = serialize_command(command, utf8=utf8)
    assert parse_line(raw, utf8=utf8) == command
    # Again: a FETCH's attribute list now comes from the parse cache.
    assert parse_line(raw, utf8=utf8) == command


@settings(max_examples=examples(100), suppress_health_check=[HealthCheck.too_slow],
          deadline=None)
@given(tagged_commands, tagged_commands)
def test_cached_fetch_attributes_never_leak_into_another_command(first, second) -> None:
    """The attribute-list cache is keyed by the rest of the line: a cached
    list never changes how the following text is parsed."""
    from mailserver.imap.wire import fetch_items

    raw_first, raw_second = serialize_command(first), serialize_command(second)
    parse_line(raw_first)
    cached = parse_line(raw_second)
    fetch_items._PARSED.clear()
    assert cached == parse_line(raw_second) == second


def _feed_all(stream: bytes, cuts: list[int]) -> list[object]:
    framer = CommandFramer(max_line_length=2000, max_literal_size=2000)
    events: list[object] = []
    previous = 0
    for cut in [*sorted(cuts), len(stream)]:
        events.extend(framer.feed(stream[previous:cut]))
        previous = cut
    return events


@SETTINGS
@given(st.lists(tagged_commands, min_size=1, max_size=4), st.booleans(), st.data())
def test_framer_chunking_is_invisible(commands, plus: bool, data) -> None:
    stream = b"".join(serialize_command(cmd, literal_plus=plus) for cmd in commands)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    whole = _feed_all(stream, [])
    assert _feed_all(stream, cuts) == whole
    units = [e for e in whole if isinstance(e, CommandUnit)]
    assert [parse_command(unit) for unit in units] == commands
    assert not any(isinstance(e, FramingFailure | LiteralTooBig) for e in whole)
    # Exactly one continuation per synchronising literal, none with LITERAL+.
    continuations = [e for e in whole if isinstance(e, ContinuationRequest)]
    if plus:
        assert continuations == []
    else:
        assert len(continuations) == sum(len(unit.literals) for unit in units) - sum(
            segment.endswith(b"+}") for unit in units for segment in unit.segments)


@SETTINGS
@given(st.binary(max_size=300), st.integers(1, 50), st.integers(0, 40), st.data())
def test_framer_never_buffers_beyond_limits(stream, max_line, max_literal, data) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    framer = CommandFramer(max_line_length=max_line, max_literal_size=max_literal,
                           max_command_size=max_line * 3 + max_literal)
    previous = 0
    for cut in [*sorted(cuts), len(stream)]:
        for event in framer.feed(stream[previous:cut]):
            if isinstance(event, CommandUnit):
                assert all(len(s) <= max_line for s in event.segments)
                assert all(len(lit) <= max_literal for lit in event.literals)
        previous = cut
        assert len(framer._line) <= max_line + 2
        assert len(framer._literal) <= max_literal


def _model(ranges, largest: int) -> list[int]:
    result = set()
    for first, last in ranges:
        a = largest if first is None else first
        b = largest if last is None else last
        result.update(n for n in range(1, largest + 1) if min(a, b) <= n <= max(a, b))
    return sorted(result)


small_sets = st.lists(st.tuples(st.none() | st.integers(1, 60), st.none() | st.integers(1, 60)),
                      min_size=1, max_size=6)


@SETTINGS
@given(small_sets, st.integers(0, 50))
def test_sequence_set_expansion_matches_model(ranges, largest: int) -> None:
    sequence_set = parse_sequence_set(str(SequenceSet(tuple(ranges))).encode())
    expanded = sequence_set.expand(largest)
    assert expanded == _model(ranges, largest)
    assert all(sequence_set.contains(n, largest) == (n in expanded)
               for n in range(0, largest + 2))


@SETTINGS
@given(st.sets(st.integers(1, 200)))
def test_sequence_set_compression(numbers: set[int]) -> None:
    compressed = SequenceSet.from_numbers(numbers)
    assert compressed.expand(200) == sorted(numbers)
    assert len(compressed.ranges) == sum(1 for n in numbers if n - 1 not in numbers)
    assert parse_sequence_set(bytes(compressed)) == compressed if numbers else True


@SETTINGS
@given(sequence_sets)
def test_sequence_set_text_round_trip(sequence_set: SequenceSet) -> None:
    assert parse_sequence_set(bytes(sequence_set)) == sequence_set


def test_saved_result_expansion() -> None:
    assert SequenceSet.saved_result().expand(10, saved=[3, 12, 5]) == [3, 5]
    assert SequenceSet.saved_result().expand(10) == []


@SETTINGS
@given(st.text())
def test_modified_utf7_round_trip(name: str) -> None:
    encoded = encode_mutf7(name)
    assert all(0x20 <= byte <= 0x7E for byte in encoded)
    assert decode_mutf7(encoded) == name


def test_modified_utf7_rfc_example() -> None:
    assert encode_mutf7("~peter/mail/台北/日本語") == b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert decode_mutf7(b"&Jjo-!") == "☺!"
    assert encode_mutf7("a&b") == b"a&-b"
