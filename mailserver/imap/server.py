"""The IMAP network layer: listeners, one connection per client, STARTTLS
(RFC 9051 6.2.1, RFC 8314 for implicit TLS on the imaps port).

Each connection is an ``asyncio.Protocol`` (no per-connection thread, no
stream objects): bytes go straight into the wire layer's ``CommandFramer``
and the events it completes wait in a short queue for the session task,
which runs the state machine in ``mailserver.imap.session``.  An idle
connection therefore costs the transport, the (TLS) protocol object, an
empty framer and a parked task: a few KiB.

Flow control both ways: reading pauses while the session has unconsumed
commands queued (a client cannot pile up work), and the session waits for
the transport's write buffer to drain between responses (a slow reader
cannot make us buffer a whole mailbox).

Connections per client IP are capped (``ImapLimits.max_connections_per_ip``,
counted across both listeners by a ``ConnectionLimiter``): one more gets
``* BYE [UNAVAILABLE]`` as its greeting (RFC 9051 7.1.5, RFC 5530 3) and is
closed without a session.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from federation.connection_limits import ConnectionLimiter
from mailserver.imap.wire.framer import CommandFramer, FramerEvent

log = logging.getLogger("schulhof.imap")

# asyncio's TLS layer (3.11+) gives every connection a 256 KiB read buffer,
# zero-filled and so resident: 2,000 idle clients would hold 500 MiB. One TLS
# record is at most 16 KiB (RFC 8446 5.1), so a buffer of that size loses
# nothing but the memory.
TLS_READ_BUFFER = 16 * 1024

# Queued output is written once it reaches this size, without waiting for the drain.
_FLUSH_SIZE = 64 * 1024

# Read pauses with this many framed events waiting, resumes below the low mark.
_QUEUE_HIGH = 32
_QUEUE_LOW = 4

# The greeting of a connection over the per-IP limit (RFC 9051 7.1.5: BYE
# instead of OK "if the server is not willing to accept a connection").
TOO_MANY_CONNECTIONS = b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"


class ConnectionClosed(Exception):
    """The peer went away; the session task ends quietly."""


@dataclass(frozen=True)
class ImapLimits:
    """Per-connection limits (conf.settings.ImapSettings, RFC 7889 APPENDLIMIT)
    and the cap on open connections per client IP (0 = unlimited)."""

    max_line_length: int = 64 * 1024
    max_literal_size: int = 64 * 1024 * 1024
    idle_timeout: float = 30 * 60.0
    max_errors: int = 20
    max_connections_per_ip: int = 500
    # Before login (issue 19.6): a client has this long for each command, and a
    # literal can only carry a user name or password.
    prelogin_timeout: float = 60.0
    max_prelogin_literal_size: int = 8 * 1024


class ImapConnection(asyncio.Protocol):
    """One client connection: framing, a bounded event queue, writes with drain.

    Implements the ``Channel`` the session state machine talks through.
    """

    def __init__(self, limits: ImapLimits, ssl_context: ssl.SSLContext | None,
                 implicit_tls: bool,
                 start_session: Callable[[ImapConnection], asyncio.Task[None] | None],
                 tls_buffer: bytearray | None = None) -> None:
        self.limits = limits
        self._tls_buffer = tls_buffer
        self._ssl_context = ssl_context
        self.tls_active = implicit_tls
        self._start_session = start_session
        self.logged_in = False
        self._framer = self._new_framer()
        self._events: collections.deque[FramerEvent] = collections.deque()
        self._waiter: asyncio.Future[bool] | None = None  # True: timed out
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._paused_reading = False
        self._paused_writing = False
        # Responses of one command are collected and written at once (one
        # TLS record and one send() instead of one per line).
        self._out: list[bytes] = []
        self._out_size = 0
        self._discarding = False
        self.closed = False
        self.client_ip = ""
        self.task: asyncio.Task[None] | None = None

    def _shrink_tls_buffer(self, transport: asyncio.BaseTransport) -> None:
        """Replace the TLS layer's read buffer by a small one (see
        TLS_READ_BUFFER). asyncio (3.11-3.13) has no public knob for it, so this
        touches ``SSLProtocol`` internals and does nothing when they look
        different; kept deliberately: without it an idle TLS connection costs
        about 284 KiB instead of 44 (tests/security/test_imap_memory.py, which
        fails when a Python release changes these internals)."""
        protocol = getattr(transport, "_ssl_protocol", None)
        buffer = getattr(protocol, "_ssl_buffer", None)
        if (protocol is None or not isinstance(buffer, bytearray)
                or len(buffer) <= TLS_READ_BUFFER or not hasattr(protocol, "max_size")):
            return
        protocol.max_size = TLS_READ_BUFFER
        # The buffer only carries one recv() into the TLS object's incoming
        # BIO, both in one event-loop callback (SSLProtocol.get_buffer, then
        # buffer_updated copies it): the server's connections can share one.
        shared = self._tls_buffer
        protocol._ssl_buffer = shared if shared is not None and len(
            shared) == TLS_READ_BUFFER else bytearray(TLS_READ_BUFFER)
        protocol._ssl_buffer_view = memoryview(protocol._ssl_buffer)

    def _new_framer(self) -> CommandFramer:
        limits = self.limits
        literal = limits.max_literal_size if self.logged_in else min(
            limits.max_literal_size, limits.max_prelogin_literal_size)
        return CommandFramer(max_line_length=limits.max_line_length, max_literal_size=literal,
                             max_command_size=literal + 16 * limits.max_line_length)

    def authenticated(self) -> None:
        """The session logged in: full literal sizes (APPENDLIMIT) and the IDLE timeout."""
        self.logged_in = True
        fresh = self._new_framer()
        self._framer.max_literal_size = fresh.max_literal_size
        self._framer.max_command_size = fresh.max_command_size

    @property
    def tls_available(self) -> bool:
        return self._ssl_context is not None and not self.tls_active

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._shrink_tls_buffer(transport)
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if peer else ""
        self.task = self._start_session(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return  # refused: no session reads these
        if self._discarding or self._framer.failed:
            return  # bytes pipelined after STARTTLS are never commands (RFC 9051 6.2.1)
        self._events.extend(self._framer.feed(data))
        if len(self._events) >= _QUEUE_HIGH and not self._paused_reading and self._transport:
            self._paused_reading = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(False)

    def _check_deadline(self) -> None:
        """The connection's one timer: it fires at the deadline it was set
        for, ends a wait that has reached the current deadline and otherwise
        sets itself for that one (a later command moved it: one timer per
        connection per timeout, not one per command)."""
        self._timer = None
        deadline = self._deadline
        waiter = self._waiter
        if deadline is None or waiter is None or waiter.done():
            return
        loop = asyncio.get_running_loop()
        if deadline <= loop.time():
            waiter.set_result(True)
        else:
            self._timer = loop.call_at(deadline, self._check_deadline)

    # --- the Channel the session uses ---------------------------------------

    async def next_event(self, timeout: float | None) -> FramerEvent | None:
        """The next framed event; None when ``timeout`` passes first.
        Raises ConnectionClosed when the client has gone."""
        self.flush()  # the client may be waiting for what we wrote (say a "+")
        if not self.logged_in:  # nobody's session to keep open: a short leash
            timeout = self.limits.prelogin_timeout if timeout is None else min(
                timeout, self.limits.prelogin_timeout)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        self._deadline = deadline
        while not self._events:
            if self.closed:
                raise ConnectionClosed()
            if deadline is not None:
                if deadline <= loop.time():
                    return None
                timer = self._timer
                if timer is None or timer.when() > deadline:
                    if timer is not None:
                        timer.cancel()
                    self._timer = loop.call_at(deadline, self._check_deadline)
            # The waiter is resolved straight by data_received (None) or the
            # deadline (True): one event-loop turn to wake this task, where
            # wait_for(shield(...)) took three and a timer per command.
            self._waiter = loop.create_future()
            try:
                if await self._waiter:
                    return None
            finally:
                self._waiter = None
        event = self._events.popleft()
        if self._paused_reading and len(self._events) <= _QUEUE_LOW and self._transport:
            self._paused_reading = False
            self._transport.resume_reading()
        return event

    def write(self, data: bytes) -> None:
        """Queue ``data``; it goes out at the next ``drain``, ``next_event``
        or ``close`` (or at once beyond 64 KiB, so flow control still sees
        big responses)."""
        if self.closed or self._transport is None:
            return
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= _FLUSH_SIZE:
            self.flush()

    def flush(self) -> None:
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out = []
        self._out_size = 0
        if not self.closed and self._transport is not None:
            self._transport.write(data)

    async def drain(self) -> None:
        self.flush()
        if self.closed:
            raise ConnectionClosed()
        if self._paused_writing:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None
            if self.closed:
                raise ConnectionClosed()

    async def start_tls(self) -> None:
        """Upgrade to TLS (RFC 9051 6.2.1). Anything the client sent after
        STARTTLS and before the handshake is dropped, with the framer state."""
        assert self._transport is not None and self._ssl_context is not None
        self._discarding = True
        await self.drain()  # the tagged OK goes out in plaintext first
        self._events.clear()
        self._framer = self._new_framer()
        # No await between here and loop.start_tls switching the transport's
        # protocol: every later data_received call carries decrypted bytes
        # (which may come before start_tls returns), never plaintext.
        self._discarding = False
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(self._transport, self, self._ssl_context,
                                             server_side=True, ssl_handshake_timeout=30.0)
        except (ssl.SSLError, OSError, TimeoutError) as error:
            # A client that cannot (or will not) speak TLS: one line, not our error.
            log.info("event=imap_tls_handshake_failed ip=%s reason=%s", self.client_ip,
                     getattr(error, "reason", None) or type(error).__name__)
            self.abort()
            raise ConnectionClosed() from None
        if transport is None:
            raise ConnectionClosed()
        self._transport = transport
        self._shrink_tls_buffer(transport)
        self.tls_active = True

    def refuse(self, greeting: bytes) -> None:
        """Answer ``greeting`` (a BYE) instead of starting a session, and close."""
        self.closed = True
        self._out = []
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(greeting)
            self._transport.close()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self.flush()
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


SessionFactory = Callable[[ImapConnection], Any]


class ImapServer:
    """The IMAP service: a STARTTLS listener and an implicit-TLS listener.

    ``session_runner(connection)`` is a coroutine function running one
    session to its end (``mailserver.imap.session.ImapSession(...).run``);
    the server only owns sockets and tasks. Port 0 takes a free port (the
    real one is reported by ``start``), -1 disables a listener.

    A connection counts towards its IP's limit from the moment it is
    accepted (for imaps: after the TLS handshake) until its session task has
    ended, however it ends (LOGOUT, client gone, autologout, ``stop``).
    """

    def __init__(self, *, bind: str, imap_port: int, imaps_port: int,
                 ssl_context: ssl.SSLContext | None, limits: ImapLimits,
                 session_runner: Callable[[ImapConnection], Any],
                 reuse_port: bool = False) -> None:
        self._bind = bind
        self._reuse_port = reuse_port  # SO_REUSEPORT: several serve workers on one port
        self._ports = {"imap": imap_port, "imaps": imaps_port}
        self._ssl_context = ssl_context
        self._limits = limits
        self._run_session = session_runner
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[ImapConnection] = set()
        self._limiter = ConnectionLimiter(limits.max_connections_per_ip)
        self.bound: dict[str, int] = {}
        # One TLS read buffer for all connections of this server (one event loop).
        self._tls_buffer = bytearray(TLS_READ_BUFFER)

    async def start(self) -> list[str]:
        loop = asyncio.get_running_loop()
        described = []
        for name, port in self._ports.items():
            if port < 0:
                continue
            implicit = name == "imaps"
            if implicit and self._ssl_context is None:
                continue

            def factory(implicit: bool = implicit) -> ImapConnection:
                return ImapConnection(self._limits, self._ssl_context, implicit, self._spawn,
                                      self._tls_buffer)

            server = await loop.create_server(
                factory, self._bind, port, ssl=self._ssl_context if implicit else None,
                ssl_handshake_timeout=30.0 if implicit else None, reuse_address=True,
                reuse_port=self._reuse_port or None, backlog=1024)
            self._servers.append(server)
            real = server.sockets[0].getsockname()[1]
            self.bound[name] = real
            described.append(f"service={name} addr={self._bind}:{real}")
        return described

    def _spawn(self, connection: ImapConnection) -> asyncio.Task[None] | None:
        ip = connection.client_ip
        if not self._limiter.acquire(ip):
            log.info("event=imap_refused reason=connections_per_ip ip=%s", ip)
            connection.refuse(TOO_MANY_CONNECTIONS)
            return None
        self._connections.add(connection)
        task = asyncio.get_running_loop().create_task(self._serve(connection))
        # A done callback, not a finally in _serve: a task cancelled by stop()
        # before its first step never runs _serve's body, but still gets here.
        task.add_done_callback(lambda _task: self._ended(connection))
        return task

    def _ended(self, connection: ImapConnection) -> None:
        self._connections.discard(connection)
        self._limiter.release(connection.client_ip)

    async def _serve(self, connection: ImapConnection) -> None:
        try:
            await self._run_session(connection)
        except ConnectionClosed:
            pass
        except Exception:  # the session catches per command; this is a last resort
            log.exception("event=imap_session_crash client=%s", connection.client_ip)
        finally:
            connection.close()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def connections_from(self, ip: str) -> int:
        """Open (counted) connections of one client IP."""
        return self._limiter.open_connections(ip)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for connection in list(self._connections):
            connection.write(b"* BYE Server shutting down\r\n")
            if connection.task is not None:
                connection.task.cancel()
            connection.close()
        tasks = [c.task for c in self._connections if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for server in self._servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 5)
            except TimeoutError:
                pass
        self._servers = []
        self._connections.clear()
