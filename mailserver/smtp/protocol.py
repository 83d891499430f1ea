"""aiosmtpd's SMTP protocol, extended only where it has no hook for what we need.

aiosmtpd (``aiosmtpd.smtp.SMTP``) owns the protocol.  This subclass adds:

* strict envelope address parsing (``_getaddr``, see mailserver.smtp.addresses);
* enhanced status codes on aiosmtpd's own replies and an error counter
  (``push``): after ``max_errors`` bad replies, 421 4.7.0 and close;
* unknown commands as counted errors (500 5.5.2) instead of aiosmtpd's
  fixed "5 unknown commands" rule;
* a per-IP connection limit (421 4.7.0 at connect, RFC 5321 3.8);
* a 421 4.4.2 before closing an idle connection (RFC 5321 4.5.3.2.7), and
  idleness measured on received bytes, so a long DATA upload is not idle;
* the line length limit from the settings (RFC 5321 4.5.3.1.6);
* DATA read in bulk (mailserver.smtp.data) instead of aiosmtpd's line loop;
* BDAT (RFC 3030 CHUNKING, mailserver.smtp.chunking), which aiosmtpd lacks;
* a hook so the session hears about lost connections (to abort its transaction);
* the command, hook and AUTH tables found once per class (command_table), not
  per connection as aiosmtpd does;
* STARTTLS refused once TLS is active (RFC 3207 4.2: no TLS inside TLS), and a
  failed handshake logged as one INFO line instead of aiosmtpd's ERROR traceback.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import re
import ssl
from collections.abc import Callable
from typing import Any

from aiosmtpd.smtp import (
    MISSING,
    SMTP,
    Session,
    TLSSetupException,
    login_always_fail,
    syntax,
)

from federation.connection_limits import ConnectionLimiter
from mailserver.smtp import replies
from mailserver.smtp.addresses import AddressError, parse_path, split_path_argument
from mailserver.smtp.chunking import (
    BdatSyntaxError,
    ChunkedMessage,
    parse_bdat_argument,
    read_chunk,
)
from mailserver.smtp.command_table import CommandTables
from mailserver.smtp.config import SmtpLimits
from mailserver.smtp.data import DataAccumulator, DataState, longest_line, read_data
from mailserver.smtp.session import SmtpSession

log = logging.getLogger("schulhof.smtp")
# aiosmtpd echoes client words in some replies ("502 Could not VRFY <arg>"): bytes
# that were not UTF-8 arrive as surrogates (which cannot be encoded at all) and
# control characters would garble the reply line; both become "?".
_UNSENDABLE = re.compile(r"\r\n|[\x00-\x1f\x7f\ud800-\udfff]")


# The session hooks that read the database (mailserver.smtp.session): run shielded.
_DATABASE_HOOKS = frozenset({"MAIL", "RCPT"})


class _CancelOnce:
    """The session task, cancelled at most once.

    aiosmtpd cancels it on EOF and again on connection loss.  When the client
    goes away during a database call, SQLAlchemy answers the first cancel by
    closing the interrupted connection under ``asyncio.shield``; the second
    cancel abandons that close half-way, and asyncio logs "Task was destroyed
    but it is pending!" as an ERROR.
    """

    def __init__(self, task: asyncio.Task[None]) -> None:
        self.task = task
        self.cancelled = False

    def cancel(self, msg: Any = None) -> bool:
        if self.cancelled:
            return False
        self.cancelled = True
        return self.task.cancel(msg)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.task, name)


def _consume_outcome(task: asyncio.Future[Any]) -> None:
    """A shielded hook whose caller was cancelled: its error is already logged
    by the hook, not again as "exception was never retrieved"."""
    if not task.cancelled():
        task.exception()


def sendable(text: str, utf8: bool) -> str:
    """``text`` made safe to send as a reply (RFC 5321 4.2: printable text, CRLF-ended)."""
    text = _UNSENDABLE.sub(lambda m: m.group() if m.group() == "\r\n" else "?", text)
    return text if utf8 else text.encode("ascii", "replace").decode("ascii")


class _Commands(dict[str, Any]):
    """aiosmtpd's command table, answering unknown commands with our own handler."""

    def __init__(self, commands: dict[str, Any], unknown: Callable[..., Any]) -> None:
        super().__init__(commands)
        self._unknown = unknown

    def get(self, command: str, default: Any = None) -> Any:
        found = super().get(command)
        return found if found is not None else functools.partial(self._unknown, command)


class _Session(Session):
    """aiosmtpd's Session without the deprecation warning its AUTH path logs every time."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class SchulhofSMTP(SMTP):
    """One SMTP connection (RFC 5321) with our limits; see the module docstring."""

    def __init__(self, handler: SmtpSession, *, limits: SmtpLimits,
                 limiter: ConnectionLimiter, on_opened: Callable[[SchulhofSMTP], None],
                 on_closed: Callable[[SchulhofSMTP], None], tables: CommandTables,
                 hostname: str, ident: str, data_size_limit: int, timeout: float,
                 enable_SMTPUTF8: bool = True, tls_context: ssl.SSLContext | None = None,
                 require_starttls: bool = False, auth_required: bool = False,
                 auth_exclude_mechanism: tuple[str, ...] = (),
                 implicit_tls: bool = False) -> None:
        """What aiosmtpd 1.4's ``SMTP.__init__`` sets up, for the options we use, with
        the command tables from ``tables`` (command_table: found once per class, not
        per connection).  tests/mailserver/smtp/test_protocol_init.py compares the
        result with aiosmtpd's own ``__init__``, so an aiosmtpd upgrade that adds
        state fails there."""
        # +1 for a dot-stuffed line (RFC 5321 4.5.3.1.6); the StreamReader's limit.
        self.line_length_limit = limits.max_line_length + 1
        self._chunks: ChunkedMessage | None = None  # the BDAT chunks of this transaction
        self.__ident__ = ident
        self.loop = asyncio.get_running_loop()
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(limit=self.line_length_limit, loop=self.loop),
            client_connected_cb=self._cb_client_connected, loop=self.loop)
        self.event_handler = handler
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = False
        # aiosmtpd clears a dict shared by the class here (and EHLO raises MAIL's limit
        # in it, for every connection at once); each connection gets its own.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self.hostname = hostname
        self.tls_context = tls_context
        self.require_starttls = bool(tls_context) and require_starttls
        self._timeout_duration = timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        # The whole connection is TLS (RFC 8314), so AUTH needs no STARTTLS.
        self._auth_require_tls = not implicit_tls
        self._proxy_timeout = None
        self._authenticator = None
        self._auth_callback = login_always_fail  # never called: our mechanisms authenticate
        self._auth_required = auth_required
        bound = tables.bind(self, handler, auth_exclude_mechanism)
        self._auth_methods = bound.mechanisms
        self._handle_hooks = bound.hooks
        self._ehlo_hook_ver = bound.ehlo_hook_version
        self._enforce_call_limit = False
        self.session_handler = handler
        self._limits = limits
        self._limiter = limiter
        self._on_opened = on_opened
        self._on_closed = on_closed
        self._errors = 0
        self._client_ip: str | None = None
        self._refused = False
        self._finished = False
        self._smtp_methods = _Commands(bound.commands, self._smtp_unknown)
        self._continued: list[str] = []  # the lines of a multiline reply so far

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def _set_post_data_state(self) -> None:
        # aiosmtpd drops the envelope after DATA (also after 552/500 without calling
        # handle_DATA), on RSET, HELO/EHLO and STARTTLS: end our transaction with it.
        old = self.envelope
        self._chunks = None
        super()._set_post_data_state()
        if old is not None and getattr(self, "session_handler", None) is not None:
            self.session_handler.envelope_dropped(old)

    # --- connection lifetime ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None and self._client_ip is None:
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
            if not self._limiter.acquire(ip):
                log.info("event=smtp_refused reason=connections_per_ip ip=%s", ip)
                self._refused = True
                transport.write(replies.TOO_MANY_CONNECTIONS.encode() + b"\r\n")  # type: ignore[attr-defined]
                transport.close()
                return
            self._client_ip = ip
            self._on_opened(self)
        super().connection_made(transport)
        if self._handler_coroutine is not None and \
                not isinstance(self._handler_coroutine, _CancelOnce):
            self._handler_coroutine = _CancelOnce(self._handler_coroutine)  # type: ignore[assignment]

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return  # never counted, never opened
        if not self._finished:
            self._finished = True
            if self._client_ip is not None:
                self._limiter.release(self._client_ip)
            self._on_closed(self)
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._reset_timeout()
        super().data_received(data)

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(replies.IDLE_TIMEOUT.encode() + b"\r\n")  # type: ignore[attr-defined]
        super()._timeout_cb()

    def close_now(self, reply: str = replies.SHUTTING_DOWN) -> None:
        """Say ``reply`` and close (used when the service stops)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply.encode() + b"\r\n")  # type: ignore[attr-defined]
            self.transport.close()

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        # A client that goes away cancels the session task; a hook that reads the
        # database (MAIL's sender check, RCPT's directory lookup) still finishes that
        # work instead of being cut off inside SQLAlchemy's connection handling.  DATA's
        # commit has a task of its own already, which stop() waits for (session.py);
        # the other hooks touch no database and cost no extra task (issue 15).
        if command not in _DATABASE_HOOKS:
            return await super()._call_handler_hook(command, *args)
        hook = asyncio.ensure_future(super()._call_handler_hook(command, *args))
        hook.add_done_callback(_consume_outcome)
        return await asyncio.shield(hook)

    # --- replies and errors ----------------------------------------------------------------------
    async def push(self, status: str | bytes) -> None:
        handler = self._handler_coroutine
        ended = isinstance(handler, _CancelOnce) and handler.cancelled
        if self.transport is None or (ended and self.transport.is_closing()):
            # The session was ended (cancelled, its connection closed) but runs
            # on: SQLAlchemy's pool swallows a cancel that interrupts a connection
            # reset.  End the command here as the cancel would have, instead of
            # writing into the closed (TLS) transport.
            raise asyncio.CancelledError
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        text = replies.enhance(sendable(text, self.enable_SMTPUTF8))
        if text[3:4] == "-" and text[:3].isdigit():
            # A line of a multiline reply (RFC 5321 4.2.1): written together with its
            # last line, so EHLO's ten lines are one write and one segment, not ten.
            self._continued.append(text)
            return
        if self._continued:
            text, self._continued = "\r\n".join([*self._continued, text]), []
        await super().push(text)
        if not replies.counts_as_error(text):
            return
        self._errors += 1
        if self._errors >= self._limits.max_errors and self.transport is not None:
            log.info("event=smtp_too_many_errors ip=%s", self._client_ip)
            await super().push(replies.TOO_MANY_ERRORS)
            self.transport.close()
            if self._handler_coroutine is not None:
                self._handler_coroutine.cancel()

    async def _smtp_unknown(self, command: str, arg: str | None) -> None:
        await self.push(replies.unknown_command(command))

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # A client that cannot (or will not) speak TLS is not our error.  aiosmtpd
            # closes the connection itself after this; the reply is never sent.
            cause = error.__cause__
            reason = getattr(cause, "reason", None) or type(cause).__name__
            log.info("event=smtp_tls_handshake_failed ip=%s reason=%s", self._client_ip, reason)
            return replies.LOCAL_ERROR
        return await super().handle_exception(error)

    # --- STARTTLS (RFC 3207) ---------------------------------------------------------------------
    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        """aiosmtpd's STARTTLS, but never a second TLS layer inside the first one.

        aiosmtpd would wrap its ``SSLProtocol`` around the TLS transport of an
        implicit-TLS (or already upgraded) connection; a failing inner handshake then
        makes asyncio call ``_SSLProtocolTransport._force_close(exc)``, which calls
        ``SSLProtocol._abort(exc)`` with one argument too many (the TypeError of
        issue 19).  RFC 3207 4.2: a client must not send STARTTLS again.
        """
        if self._tls_protocol is not None or self.transport is None \
                or self.transport.get_extra_info("sslcontext") is not None:
            await self.push("554 5.5.1 Error: TLS already active")
            return
        await super().smtp_STARTTLS(arg)

    # --- DATA (RFC 5321 4.1.1.4) ---------------------------------------------------------------
    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA with the section read by ``read_data``; same checks and replies."""
        if self._decode_data:  # never on our listeners; aiosmtpd's own loop decodes
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        if self._chunks is not None:  # RFC 3030 2: not both in one transaction
            await self.push("503 5.5.1 Error: DATA after BDAT; send RSET")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = DataAccumulator(self.data_size_limit, self.line_length_limit,
                               self.line_length_limit)
        try:
            await read_data(self._reader, data)
        except asyncio.CancelledError:
            log.info("event=smtp_lost_during_data ip=%s", self._client_ip)
            self._writer.close()
            raise
        if data.state is DataState.TOO_LONG:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            self._set_post_data_state()
            return
        if data.state is DataState.TOO_MUCH:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()
            return
        await self._deliver(data.content())

    async def _deliver(self, content: bytes) -> None:
        """The end of DATA or BDAT LAST: the session's handle_DATA decides and replies."""
        assert self.envelope is not None
        # decode_data is never set on our listeners: the content stays bytes.
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    # --- BDAT (RFC 3030 2) -----------------------------------------------------------------------
    @syntax("BDAT chunk-size [LAST]")
    async def smtp_BDAT(self, arg: str | None) -> None:
        """One chunk; its octets are read (kept or discarded) before any reply."""
        try:
            command = parse_bdat_argument(arg)
        except BdatSyntaxError:
            # Without a size the stream cannot be followed: what comes next
            # would be read as commands.
            await self.push("501 5.5.4 Syntax: BDAT chunk-size [LAST]; closing")
            self._close_now()
            return
        limit = self.data_size_limit or 0
        if limit and command.size > 2 * limit:
            # Far beyond any message we take, whatever the transaction's state:
            # not worth reading to discard (a client could keep us reading for ever).
            await self.push("552 Error: Too much mail data; closing")
            self._close_now()
            return
        refusal = self._bdat_refusal()
        chunks = self._chunks
        if refusal is None and chunks is None:
            chunks = self._chunks = ChunkedMessage(limit)
        if refusal is None and chunks is not None and not chunks.fits(command.size):
            refusal = "552 Error: Too much mail data"
        keep = refusal is None
        try:
            data = await read_chunk(self._reader, command.size, keep=keep)
        except asyncio.CancelledError:
            log.info("event=smtp_lost_during_bdat ip=%s", self._client_ip)
            self._writer.close()
            raise
        except asyncio.IncompleteReadError:  # the client hung up mid-chunk
            log.info("event=smtp_lost_during_bdat ip=%s", self._client_ip)
            self._close_now()
            return
        if refusal is not None:
            if chunks is not None:
                chunks.fail()  # later chunks of this transaction: 503
            if command.last:
                self._set_post_data_state()
            await self.push(refusal)
            return
        assert chunks is not None
        chunks.add(data)
        if not command.last:
            await self.push(f"250 2.0.0 {command.size} octets received")
            return
        content = chunks.content()
        if content and longest_line(content) + 2 > self.line_length_limit:  # as for DATA
            self._set_post_data_state()
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            return
        await self._deliver(content)

    def _bdat_refusal(self) -> str | None:
        """Why this transaction takes no chunk now, as aiosmtpd's DATA checks would say."""
        assert self.session is not None and self.envelope is not None
        if not self.session.host_name or not self.session.extended_smtp:
            return "503 5.5.1 Error: send EHLO first"
        if self._auth_required and not self.session.authenticated:
            return "530 5.7.0 Authentication required"
        if not self.envelope.mail_from:
            return "503 5.5.1 Error: need MAIL command"
        if not self.envelope.rcpt_tos:
            return "503 Error: need RCPT command"
        if self._chunks is not None and self._chunks.failed:
            return "503 5.5.1 Error: an earlier chunk of this message failed; send RSET"
        return None

    def _close_now(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()

    # --- addresses -------------------------------------------------------------------------------
    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """RFC 5321 4.1.2 paths, strictly (see mailserver.smtp.addresses)."""
        if not arg:
            return "", ""
        try:
            path, params = split_path_argument(arg)
            mailbox = parse_path(path)
        except AddressError:
            return None, None
        return ("<>" if mailbox is None else str(mailbox)), params
