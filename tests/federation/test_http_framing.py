"""federation.http_framing: request boundaries found in any split of the stream."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federation.http_framing import Phase, RequestFraming

bodies = st.binary(max_size=300)


def _request(body: bytes, chunked: bool, chunk_sizes: list[int]) -> bytes:
    if not body:
        return b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    if not chunked:
        return (b"POST /a HTTP/1.1\r\nHost: x\r\ncontent-length: %d\r\n\r\n" % len(body)) + body
    out, rest, sizes = b"", body, chunk_sizes or [7]
    while rest:
        size = max(1, sizes[len(out) % len(sizes)])
        out += b"%x;ext=1\r\n" % len(rest[:size]) + rest[:size] + b"\r\n"
        rest = rest[size:]
    return (b"PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + out
            + b"0\r\nTrailer: t\r\n\r\n")


@given(st.lists(st.tuples(bodies, st.booleans(), st.lists(st.integers(1, 50), max_size=3)),
                min_size=1, max_size=4),
       st.lists(st.integers(1, 64), min_size=1, max_size=10))
def test_every_request_ends_exactly_at_its_last_byte(
        requests: list[tuple[bytes, bool, list[int]]], splits: list[int]) -> None:
    framing = RequestFraming()
    for body, chunked, sizes in requests:
        raw = b"\r\n" + _request(body, chunked, sizes)
        position, i = 0, 0
        while position < len(raw):
            step = splits[i % len(splits)]
            i += 1
            framing.feed(raw[position:position + step])
            position += step
            if position < len(raw) - 0 and position > 2:
                assert framing.waiting_for_client or position >= len(raw)
        assert framing.phase is Phase.IDLE and not framing.confused
    assert framing.requests_started == len(requests)


def test_a_body_announced_is_waited_for() -> None:
    framing = RequestFraming()
    framing.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345")
    assert framing.phase is Phase.BODY and framing.body_length == 10
    framing.feed(b"67890GET / HTTP/1.1\r\n")
    assert framing.phase is Phase.HEAD and framing.requests_started == 2


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    framing = RequestFraming()
    framing.feed(data)
    framing.feed(data)
    assert framing.phase in set(Phase)
