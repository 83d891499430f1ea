"""A guard in front of an aiohttp listener: slow clients are timed out, and one
client address cannot open unlimited connections.

aiohttp's server has a keep-alive timeout but no timeout for reading a request:
a client that sends half a header section, or announces a body and then
trickles it, holds its connection (and the request handler) for as long as
it likes.  ``GuardedSite`` wraps each connection's aiohttp protocol and follows
the request framing (federation.http_framing) to enforce:

* ``header_timeout``: from the connection (after TLS) or the first byte of a
  request to the end of its header section; then ``408`` and close;
* ``body_timeout``: the longest pause inside a request body, and together with
  ``min_body_rate`` a deadline for the whole body (``body_timeout +
  length / min_body_rate``); then the connection is closed;
* ``max_connections_per_ip``: one more connection gets ``503`` and is closed
  (trusted reverse proxies are exempt: every client arrives from them);
* ``keepalive_timeout``: aiohttp's own, for the wait between requests.

Used by the Matrix listener (messenger.server) and the webmail
(mailserver.webmail.server): ``GuardedSite(runner, host, port, ...)`` in place
of ``web.TCPSite``, and ``HttpLimits.runner_options()`` for the ``AppRunner``.
It lives in ``federation`` because both may import it from there.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from directory.client_address import TrustedProxies
from federation.connection_limits import ConnectionLimiter
from federation.http_framing import Phase, RequestFraming

log = logging.getLogger("schulhof.http")

TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                    b"Content-Length: 0\r\n\r\n")
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                 b"Retry-After: 10\r\nContent-Length: 0\r\n\r\n")


@dataclass(frozen=True)
class HttpLimits:
    header_timeout: float = 30.0
    body_timeout: float = 60.0
    min_body_rate: int = 8 * 1024  # bytes per second a body may take on average
    keepalive_timeout: float = 75.0
    max_connections_per_ip: int = 500  # 0: unlimited
    exempt: TrustedProxies = field(default_factory=TrustedProxies)
    # SO_REUSEPORT: several ``serve`` workers listen on the same port, the kernel
    # spreads the connections (conf: ``serve --workers N``).
    reuse_port: bool = False

    def runner_options(self) -> dict[str, Any]:
        """Keyword arguments for ``web.AppRunner`` (passed on to aiohttp's protocol)."""
        return {"keepalive_timeout": self.keepalive_timeout}


class GuardedProtocol(asyncio.Protocol):
    """Passes everything to aiohttp's protocol, timing the client's side of each request."""

    # One per open connection (thousands of idle long-polls): no __dict__.
    __slots__ = ("_admitted", "_body_deadline", "_counter", "_framing", "_inner", "_limits",
                 "_loop", "_peer", "_timer", "_transport")

    def __init__(self, inner: asyncio.Protocol, limits: HttpLimits,
                 counter: ConnectionLimiter) -> None:
        self._inner = inner
        self._limits = limits
        self._counter = counter
        self._framing = RequestFraming()
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._body_deadline = 0.0
        self._loop = asyncio.get_running_loop()

    # --- asyncio.Protocol -----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) and peer else ""
        if not self._counter.acquire(self._peer):
            log.info("event=http_refused reason=too_many_connections client=%s", self._peer)
            transport.write(BUSY_RESPONSE)
            transport.close()
            return
        self._admitted = True
        self._inner.connection_made(transport)
        self._arm(self._limits.header_timeout)  # the first request must come

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        before = self._framing.phase
        self._framing.feed(data)
        after = self._framing.phase
        if self._framing.confused or after is Phase.IDLE:
            self._disarm()  # complete (or aiohttp's to refuse): the server's turn
        elif after is Phase.HEAD and before is not Phase.HEAD:
            self._arm(self._limits.header_timeout)
        elif after is Phase.BODY:
            if before is not Phase.BODY:
                length = self._framing.body_length or 0
                self._body_deadline = (self._loop.time() + self._limits.body_timeout
                                       + length / max(self._limits.min_body_rate, 1))
            self._arm(min(self._limits.body_timeout, self._body_deadline - self._loop.time()))
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admitted:
            self._admitted = False
            self._counter.release(self._peer)
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()

    # --- timers -----------------------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self._loop.call_later(max(seconds, 0.0), self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        phase = self._framing.phase
        if phase is Phase.BODY and not transport.is_reading() \
                and self._loop.time() < self._body_deadline:
            # aiohttp paused reading (its buffer is full, the handler is slow): the
            # pause is ours, not the client's.  Only the overall deadline counts.
            self._arm(self._body_deadline - self._loop.time())
            return
        log.info("event=http_timeout phase=%s client=%s", phase.value, self._peer)
        if phase is Phase.BODY or self._framing.requests_started > 1:
            # A handler is reading the body, or may still be answering the previous
            # request: no response of ours fits in.
            transport.abort()
        else:
            transport.write(TIMEOUT_RESPONSE)
            transport.close()


class GuardedSite(web.BaseSite):
    """``web.TCPSite`` with every connection behind a ``GuardedProtocol``."""

    __slots__ = ("_counter", "_host", "_limits", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *,
                 limits: HttpLimits, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._limits = limits
        self._counter = ConnectionLimiter(limits.max_connections_per_ip,
                                          exempt=limits.exempt.trusts)

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: GuardedProtocol(server(), self._limits, self._counter),
            self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=True, reuse_port=self._limits.reuse_port or None,
            ssl_handshake_timeout=self._limits.header_timeout if self._ssl_context else None)
