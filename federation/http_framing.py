"""Where an HTTP/1.1 request stream stands, from its bytes alone (RFC 9112 6 "Message
Body", 7.1 "Chunked Transfer Coding"): between requests, in a request's header
section, or in its body, and how many body bytes a request announced.

The listener guard (federation.http_guard) uses it to time a slow client out:
it never decides whether a request is valid (aiohttp's own parser does that and
answers 400), it only follows the framing.  Pure: no I/O, fed with whatever
``data_received`` got.
"""

from __future__ import annotations

import enum

MAX_HEAD_BYTES = 256 * 1024  # beyond aiohttp's own header limits: stop buffering
MAX_CHUNK_LINE = 4096


class Phase(enum.Enum):
    IDLE = "idle"  # no byte of a next request yet
    HEAD = "head"  # request line and header fields
    BODY = "body"  # the announced body (Content-Length or chunked)


class _Chunk(enum.Enum):
    SIZE = 1  # reading a chunk-size line
    DATA = 2  # inside chunk data
    DATA_END = 3  # the CRLF after chunk data
    TRAILER = 4  # trailer fields after the last chunk


class RequestFraming:
    """Follows request boundaries in a byte stream; ``feed`` as data arrives."""

    __slots__ = ("_chunk", "_chunked", "_head", "_line", "_remaining", "body_length",
                 "confused", "phase", "requests_started")

    def __init__(self) -> None:
        self.phase = Phase.IDLE
        self.body_length: int | None = None  # Content-Length of the current body
        self.requests_started = 0
        self._head = bytearray()
        self._remaining = 0
        self._chunked = False
        self._chunk = _Chunk.SIZE
        self._line = bytearray()
        self.confused = False  # framing we cannot follow: aiohttp will refuse it

    @property
    def waiting_for_client(self) -> bool:
        """Inside a request that has not fully arrived."""
        return self.phase is not Phase.IDLE

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.confused:
            if self.phase is Phase.IDLE:
                view = self._skip_empty_lines(view)
                if view:
                    self.phase = Phase.HEAD
                    self.requests_started += 1
            elif self.phase is Phase.HEAD:
                view = self._feed_head(view)
            elif self._chunked:
                view = self._feed_chunked(view)
            else:
                taken = min(self._remaining, len(view))
                self._remaining -= taken
                view = view[taken:]
                if self._remaining == 0:
                    self._end_request()

    @staticmethod
    def _skip_empty_lines(view: memoryview) -> memoryview:
        # RFC 9112 2.2: a server SHOULD ignore empty lines before a request line.
        i = 0
        while i < len(view) and view[i] in (0x0D, 0x0A):
            i += 1
        return view[i:]

    def _feed_head(self, view: memoryview) -> memoryview:
        start = max(0, len(self._head) - 3)
        self._head += view
        end = self._head.find(b"\r\n\r\n", start)
        if end < 0:
            if len(self._head) > MAX_HEAD_BYTES:
                self.confused = True
            return view[len(view):]
        rest = len(self._head) - (end + 4)
        head = bytes(self._head[:end])
        self._head.clear()
        self._start_body(head)
        return view[len(view) - rest:]

    def _start_body(self, head: bytes) -> None:
        length: int | None = None
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding":
                chunked = value.strip().lower().endswith(b"chunked")
            elif name == b"content-length":
                text = value.strip()
                if not text.isdigit() or len(text) > 18:
                    self.confused = True
                    return
                length = int(text)
        if chunked:
            self.phase, self._chunked, self._chunk, self.body_length = (
                Phase.BODY, True, _Chunk.SIZE, None)
        elif length:
            self.phase, self._chunked, self._remaining, self.body_length = (
                Phase.BODY, False, length, length)
        else:
            self._end_request()

    def _feed_chunked(self, view: memoryview) -> memoryview:
        if self._chunk is _Chunk.DATA:
            taken = min(self._remaining, len(view))
            self._remaining -= taken
            if self._remaining == 0:
                self._chunk = _Chunk.DATA_END
                self._line.clear()
            return view[taken:]
        # SIZE, DATA_END and TRAILER are line based.
        newline = bytes(view).find(b"\n")
        if newline < 0:
            self._line += view
            if len(self._line) > MAX_CHUNK_LINE:
                self.confused = True
            return view[len(view):]
        self._line += view[:newline + 1]
        line = bytes(self._line).rstrip(b"\r\n")
        self._line.clear()
        rest = view[newline + 1:]
        if self._chunk is _Chunk.DATA_END:
            self._chunk = _Chunk.SIZE
        elif self._chunk is _Chunk.SIZE:
            size_text = line.partition(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                self.confused = True
                return rest
            if size == 0:
                self._chunk = _Chunk.TRAILER
            else:
                self._chunk, self._remaining = _Chunk.DATA, size
        elif not line:  # TRAILER: the empty line ends the message
            self._end_request()
        return rest

    def _end_request(self) -> None:
        self.phase = Phase.IDLE
        self._chunked = False
        self._remaining = 0
