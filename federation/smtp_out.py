"""The outbound SMTP client: delivers queued mail to another school's (or anyone's) MX.

RFC 5321 client side on top of aiosmtplib (the session set-up, STARTTLS
included) and, when the server offers PIPELINING (RFC 2920), our own
:mod:`federation.smtp_pipeline` for the transactions:

* one :class:`OutboundConnection` per MX host carries several messages
  (RFC 5321 3.3: a new MAIL after the previous transaction; RSET after a
  failed one), so a class's worth of mail to one school costs one TLS
  handshake;
* STARTTLS whenever the server offers it (RFC 3207).  Opportunistic, as
  RFC 7435 describes: we first try with certificate verification against
  the system trust store (or ``ca_file``) and the MX host name; if only the
  *verification* fails we reconnect and encrypt without it; the outcome
  (protocol version, cipher, verified or not) is part of every result and
  is logged.  ``require_tls`` turns a server without working TLS into a
  temporary failure;
* per connection, a :class:`TlsRequirement` from the recipient domain's
  policies: MTA-STS ``enforce`` (RFC 8461 4.2) wants TLS with a certificate
  valid for the MX host name (no fallback at all); DANE (RFC 7672 2.2, 3)
  wants TLS authenticated by the host's TLSA records instead of the trust
  store.  Not achieving it raises :class:`TlsRefused` (temporary);
* per-recipient results with the reply code and the RFC 3463 enhanced
  status code, so the queue can retry 4xx and bounce 5xx recipient by
  recipient (RFC 5321 4.2.5 / 6.1).

No DNS here: the caller gives the MX host name (for SNI and verification)
and the address to connect to.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib

from federation import dane
from federation.resolver import TlsaRecord
from federation.smtp_pipeline import ParsedReply, PipelinedSession, SessionLost, dot_stuffed

log = logging.getLogger("schulhof.federation.smtp_out")

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class TlsInfo:
    """How one connection was protected; ``version == ""`` means plaintext."""

    version: str = ""
    cipher: str = ""
    verified: bool = False  # PKIX with the host name, or DANE
    dane: bool = False  # authenticated by TLSA records (RFC 7672)

    @property
    def encrypted(self) -> bool:
        return bool(self.version)

    def log_fields(self) -> str:
        if not self.encrypted:
            return "tls=none"
        text = f"tls={self.version} cipher={self.cipher} verified={str(self.verified).lower()}"
        return text + " dane=true" if self.dane else text


PLAINTEXT = TlsInfo()


@dataclass(frozen=True)
class Reply:
    """One SMTP reply (RFC 5321 4.2) with its enhanced status code (RFC 3463, RFC 2034)."""

    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def temporary(self) -> bool:
        return not self.ok and not self.permanent

    @property
    def enhanced(self) -> str:
        """The X.Y.Z code the server sent, else one derived from the reply class."""
        match = _ENHANCED.match(self.text.strip())
        if match and match.group(1) == str(self.code)[0]:
            return ".".join(match.groups())
        return {2: "2.0.0", 5: "5.0.0"}.get(self.code // 100, "4.0.0")

    @property
    def diagnostic(self) -> str:
        """The reply in one line, as RFC 3464 2.3.6 Diagnostic-Code wants it."""
        return f"{self.code} {' '.join(self.text.split())}".strip()


@dataclass(frozen=True)
class RecipientResult:
    recipient: str
    reply: Reply


@dataclass(frozen=True)
class MessageResult:
    """What one message's transaction on one connection did, recipient by recipient."""

    host: str
    tls: TlsInfo
    recipients: tuple[RecipientResult, ...]

    @property
    def delivered(self) -> tuple[str, ...]:
        return tuple(r.recipient for r in self.recipients if r.reply.ok)


@dataclass(frozen=True)
class NextEnvelope:
    """A transaction to open ahead: its MAIL and RCPTs go out right behind the
    current message (RFC 2920 3.1), and :meth:`OutboundConnection.send` for the same
    sender and recipients then reads their replies instead of sending them."""

    mail_from: str
    recipients: tuple[str, ...]
    eight_bit: bool  # the body may hold 8-bit octets (BODY=8BITMIME when offered)


@dataclass(frozen=True)
class _Opened:
    envelope: tuple[str, tuple[str, ...]]
    futures: list[asyncio.Future[ParsedReply]]


class ConnectionFailed(Exception):
    """No usable SMTP session with the host (refused, timeout, lost, greeting 4xx/5xx).

    Always temporary for the message: try the next MX host, then retry later.
    """

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class ConnectionLost(ConnectionFailed):
    """The connection broke in the middle of a transaction (its outcome is unknown)."""


class TlsRefused(ConnectionFailed):
    """The host did not give the TLS a :class:`TlsRequirement` asked for (temporary)."""


@dataclass(frozen=True)
class TlsRequirement:
    """What one connection must achieve beyond opportunistic TLS (RFC 7435).

    ``verified``: a certificate chain the trust store accepts, for the MX
    host name (MTA-STS enforce, RFC 8461 4.2).  ``tlsa``: DNSSEC-validated
    TLSA records (RFC 7672); when given they replace the trust store, and TLS
    is mandatory even if none of them is usable (RFC 7672 2.2).
    """

    verified: bool = False
    tlsa: tuple[TlsaRecord, ...] = ()
    dane: bool = False  # secure TLSA records exist (possibly none usable)

    @property
    def tls_required(self) -> bool:
        return self.verified or self.dane


OPPORTUNISTIC = TlsRequirement()


@dataclass(frozen=True)
class ClientConfig:
    helo_name: str
    port: int = 25
    timeout: float = 60.0  # per command; RFC 5321 4.5.3.2 suggests minutes, we stay shorter
    data_timeout: float = 300.0
    ca_file: str | None = None  # None: the system trust store
    source_address: str | None = None  # bind outgoing connections (SPF sees this address)
    require_tls: bool = False


def _verifying_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _opportunistic_context() -> ssl.SSLContext:
    """Encryption without authentication (RFC 7435 "opportunistic security")."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _is_verification_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc)


_NETWORK_ERRORS = (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError, ssl.SSLError)


class OutboundClient:
    """Opens :class:`OutboundConnection` s; one instance per school."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._verifying = _verifying_context(config.ca_file)
        self._opportunistic = _opportunistic_context()
        self.connections_opened = 0  # for tests and metrics

    def _attempts(self, requirement: TlsRequirement) -> list[ssl.SSLContext | None]:
        if requirement.dane:
            # The TLSA records, not the trust store, decide (RFC 7672 3.1).
            return [self._opportunistic]
        if requirement.verified:
            return [self._verifying]  # RFC 8461 4.2: no fallback of any kind
        attempts: list[ssl.SSLContext | None] = [self._verifying, self._opportunistic]
        if not self.config.require_tls:
            attempts.append(None)
        return attempts

    async def connect(self, host: str, address: str,
                      requirement: TlsRequirement = OPPORTUNISTIC) -> OutboundConnection:
        """An SMTP session with ``host`` at ``address``, TLS if offered; or ConnectionFailed.

        A failure before or at EHLO is the host's (try the next MX); a failure
        in the TLS step only moves on to the next, weaker attempt: verified
        TLS, then unverified TLS, then (unless ``require_tls``) plaintext.
        With a ``requirement`` there are fewer attempts, and falling short
        raises :class:`TlsRefused`.
        """
        require_tls = self.config.require_tls or requirement.tls_required
        refusal = TlsRefused if requirement.tls_required else ConnectionFailed
        last = "no attempt"
        for context in self._attempts(requirement):
            smtp = self._smtp(address)
            try:
                await smtp.connect()
                self.connections_opened += 1
                await smtp.ehlo()
            except _NETWORK_ERRORS as exc:
                smtp.close()
                raise ConnectionFailed(host, _describe(exc)) from exc
            offered = smtp.supports_extension("starttls")
            if context is None or not offered:
                if require_tls:
                    await _quietly_quit(smtp)
                    reason = last if offered else "STARTTLS not offered"
                    raise refusal(host, f"TLS required; {reason}")
                if offered:
                    log.warning("event=tls_fallback_plaintext host=%s reason=%r", host, last)
                return OutboundConnection(smtp, host, PLAINTEXT, self.config)
            try:
                await smtp.starttls(tls_context=context, server_hostname=host)
                await smtp.ehlo()  # RFC 3207 4.2: forget what was said in the clear
            except _NETWORK_ERRORS as exc:
                smtp.close()
                last = _describe(exc)
                if context is self._verifying and _is_verification_error(exc):
                    log.info("event=tls_unverified host=%s reason=%r", host, last)
                else:
                    log.warning("event=tls_failed host=%s reason=%r", host, last)
                continue
            if requirement.dane:
                return await self._dane_checked(smtp, host, requirement)
            return OutboundConnection(smtp, host, _tls_info(smtp, context is self._verifying),
                                      self.config)
        raise refusal(host, last)

    async def _dane_checked(self, smtp: aiosmtplib.SMTP, host: str,
                            requirement: TlsRequirement) -> OutboundConnection:
        """The connection if the server's chain matches the TLSA records (RFC 7672 3)."""
        usable = [r for r in requirement.tlsa if dane.usable(r)]
        if not usable:
            # RFC 7672 2.2: secure TLSA records, none usable: encrypt, authenticate nothing.
            return OutboundConnection(smtp, host, _tls_info(smtp, False), self.config)
        result = dane.verify_chain(_peer_chain(smtp), usable, host, _utcnow())
        if not result.ok:
            await _quietly_quit(smtp)
            log.warning("event=dane_mismatch host=%s reason=%r", host, result.reason)
            raise TlsRefused(host, f"DANE: {result.reason}")
        info = _tls_info(smtp, True)
        return OutboundConnection(smtp, host, TlsInfo(info.version, info.cipher, True, True),
                                  self.config)

    def _smtp(self, address: str) -> aiosmtplib.SMTP:
        source = (self.config.source_address, 0) if self.config.source_address else None
        return aiosmtplib.SMTP(hostname=address, port=self.config.port,
                               local_hostname=self.config.helo_name, source_address=source,
                               timeout=self.config.timeout, start_tls=False)


def _tls_info(smtp: aiosmtplib.SMTP, verified: bool) -> TlsInfo:
    ssl_object = smtp.get_transport_info("ssl_object")
    if ssl_object is None:
        return PLAINTEXT
    cipher = ssl_object.cipher()
    return TlsInfo(ssl_object.version() or "", cipher[0] if cipher else "", verified)


def _peer_chain(smtp: aiosmtplib.SMTP) -> list[bytes]:
    """The certificates the server sent, leaf first, DER.

    ``get_unverified_chain`` is public from Python 3.13; on 3.11/3.12 the
    same method sits on the private ``_sslobj``.  Without it only the leaf is
    known (enough for DANE-EE).
    """
    ssl_object = smtp.get_transport_info("ssl_object")
    if ssl_object is None:
        return []
    chain_of = getattr(ssl_object, "get_unverified_chain", None) or getattr(
        getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if chain_of is not None:
        chain = chain_of() or []
        return [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                for c in chain]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _reply(parsed: ParsedReply) -> Reply:
    return Reply(parsed.code, parsed.text)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:300]


async def _quietly_quit(smtp: aiosmtplib.SMTP, timeout: float | None = None) -> None:
    try:
        await (smtp.quit() if timeout is None else smtp.quit(timeout=timeout))
    except _NETWORK_ERRORS:
        smtp.close()


class OutboundConnection:
    """One SMTP session with one MX host; several messages one after another."""

    def __init__(self, smtp: aiosmtplib.SMTP, host: str, tls: TlsInfo,
                 config: ClientConfig) -> None:
        self._smtp = smtp
        self.host = host
        self.tls = tls
        self._config = config
        self.messages_sent = 0
        # RFC 2920: with PIPELINING the transactions go through our own session on
        # aiosmtplib's transport (set up, TLS included, by aiosmtplib).
        self._session: PipelinedSession | None = None
        # The next transaction's MAIL, RCPT and DATA, sent behind the last message.
        self._opened: _Opened | None = None
        if smtp.supports_extension("pipelining") and isinstance(smtp.transport,
                                                                asyncio.Transport):
            self._session = PipelinedSession(smtp.transport, config.timeout)
        log.info("event=outbound_connected host=%s %s pipelining=%s", host, tls.log_fields(),
                 str(self._session is not None).lower())

    @property
    def pipelining(self) -> bool:
        return self._session is not None

    @property
    def usable(self) -> bool:
        if self._session is not None:
            return self._session.connected
        return self._smtp.is_connected

    def _mail_options(self, mail_from: str, recipients: Sequence[str],
                      eight_bit: bool) -> tuple[list[str], str] | None:
        """MAIL parameters and the address encoding; None if the server cannot take
        the addresses (RFC 6531 3.2: no downgrade of internationalized addresses)."""
        utf8 = any(not a.isascii() for a in (mail_from, *recipients))
        options = []
        if utf8:
            if not self._smtp.supports_extension("smtputf8"):
                return None
            options.append("SMTPUTF8")
        if eight_bit and self._smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")  # RFC 6152
        return options, "utf-8" if utf8 else "ascii"

    async def send(self, mail_from: str, recipients: Sequence[str], message: bytes,
                   then: NextEnvelope | None = None) -> MessageResult:
        """One transaction (RFC 5321 3.3): MAIL, RCPT per recipient, DATA.

        ``then``: the transaction the caller sends next on this connection; with
        PIPELINING its commands follow this message in the same write, so the
        next message costs one round trip instead of two.  The caller must then
        send it next (or close the connection).

        Raises ConnectionLost when the connection breaks (the caller retries
        every recipient of this message that did not get a result, and of ``then``).
        """
        if not self.usable:
            raise ConnectionLost(self.host, "connection closed")
        smtp = self._smtp
        mail = self._mail_options(mail_from, recipients, not message.isascii())
        if mail is None:
            reply = Reply(553, "5.6.7 the receiving server does not support SMTPUTF8")
            return self._result([RecipientResult(r, reply) for r in recipients])
        options, encoding = mail
        if self._session is not None:
            try:
                return await self._send_pipelined(self._session, mail_from, recipients,
                                                  message, options, encoding, then)
            except SessionLost as exc:
                self._drop_opened()
                self._session.close()
                raise ConnectionLost(self.host, str(exc)) from exc
        try:
            try:
                await smtp.mail(mail_from, options=options, encoding=encoding)
            except aiosmtplib.SMTPSenderRefused as exc:
                reply = Reply(exc.code, exc.message)
                await self._reset()
                return self._result([RecipientResult(r, reply) for r in recipients])
            results: dict[str, Reply] = {}
            accepted: list[str] = []
            for recipient in recipients:
                try:
                    response = await smtp.rcpt(recipient, encoding=encoding)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    results[recipient] = Reply(exc.code, exc.message)
                else:
                    accepted.append(recipient)
                    results[recipient] = Reply(response.code, response.message)
            if not accepted:
                await self._reset()
                return self._result([RecipientResult(r, results[r]) for r in recipients])
            try:
                response = await smtp.data(message, timeout=self._config.data_timeout)
            except aiosmtplib.SMTPDataError as exc:
                data_reply = Reply(exc.code, exc.message)
                await self._reset()
            else:
                data_reply = Reply(response.code, response.message)
                self.messages_sent += 1
            for recipient in accepted:
                results[recipient] = data_reply
            return self._result([RecipientResult(r, results[r]) for r in recipients])
        except ConnectionLost:
            raise
        except _NETWORK_ERRORS as exc:
            self._smtp.close()
            raise ConnectionLost(self.host, _describe(exc)) from exc

    @staticmethod
    def _transaction_lines(mail_from: str, recipients: Sequence[str], options: list[str],
                           encoding: str) -> list[bytes]:
        mail = f"MAIL FROM:<{mail_from}>" + "".join(f" {o}" for o in options)
        return [mail.encode(encoding), *(f"RCPT TO:<{r}>".encode(encoding)
                                         for r in recipients), b"DATA"]

    def _ahead(self, then: NextEnvelope | None) -> list[bytes]:
        """The command lines of ``then`` to send behind this message, if it can go."""
        if then is None:
            return []
        mail = self._mail_options(then.mail_from, then.recipients, then.eight_bit)
        if mail is None:
            return []  # send() answers it without a word to the server
        return self._transaction_lines(then.mail_from, then.recipients, *mail)

    async def _send_pipelined(self, session: PipelinedSession, mail_from: str,
                              recipients: Sequence[str], message: bytes, options: list[str],
                              encoding: str, then: NextEnvelope | None) -> MessageResult:
        """MAIL, RCPT per recipient and DATA in one write (RFC 2920 3.1), then the
        message if DATA got its 354; per recipient its RCPT reply or the final one.

        The commands went out already if the previous message carried them."""
        opened, self._opened = self._opened, None
        if opened is not None and opened.envelope == (mail_from, tuple(recipients)):
            futures = opened.futures  # the options were chosen then, from the same body
        else:
            if opened is not None:  # a caller's mistake: the server waits for other mail
                self._opened = opened  # dropped with the connection
                raise SessionLost("internal: another transaction was opened ahead")
            futures = session.send(self._transaction_lines(mail_from, recipients, options,
                                                           encoding))
        replies = [_reply(r) for r in await session.replies(futures)]
        mail_reply, rcpt_replies, data_reply = replies[0], replies[1:-1], replies[-1]
        results = dict(zip(recipients, rcpt_replies, strict=True))
        accepted = [r for r in recipients if mail_reply.ok and results[r].ok]
        if data_reply.code == 354:
            if not accepted:
                # RFC 2920 3.1: DATA accepted without a recipient: an empty message ends it.
                await session.data(b".\r\n", self._config.data_timeout)
                await self._reset_pipelined(session)
            else:
                ahead = self._ahead(then)
                [data_future, *next_futures] = session.send(ahead, dot_stuffed(message))
                if ahead:
                    assert then is not None
                    self._opened = _Opened((then.mail_from, tuple(then.recipients)),
                                           next_futures)
                [reply] = await session.replies([data_future], self._config.data_timeout)
                data_reply = _reply(reply)
                if data_reply.ok:
                    self.messages_sent += 1
        else:
            await self._reset_pipelined(session)  # DATA refused: the transaction is void
        if not mail_reply.ok:
            return self._result([RecipientResult(r, mail_reply) for r in recipients])
        for recipient in accepted:
            results[recipient] = data_reply
        return self._result([RecipientResult(r, results[r]) for r in recipients])

    def _drop_opened(self) -> bool:
        """Forgets the transaction opened ahead (its replies are not wanted); was one?"""
        if self._opened is None:
            return False
        for future in self._opened.futures:
            future.cancel()
        self._opened = None
        return True

    async def _reset_pipelined(self, session: PipelinedSession) -> None:
        await session.commands([b"RSET"])

    def _result(self, results: list[RecipientResult]) -> MessageResult:
        return MessageResult(self.host, self.tls, tuple(results))

    async def _reset(self) -> None:
        """RSET after a refused transaction; a server that hung up is found out later."""
        try:
            await self._smtp.rset()
        except _NETWORK_ERRORS:
            self._smtp.close()

    async def close(self, timeout: float | None = None) -> None:
        """QUIT (RFC 5321 4.1.1.10), or just drop the connection if that fails.

        ``timeout``: how long to wait for the reply (default: the command timeout).
        """
        if self._session is not None:
            if self._drop_opened():
                # The server may be waiting for a message after a 354: a QUIT would
                # be taken as its text.  Dropping the connection voids the transaction.
                pass
            elif self._session.connected:
                with contextlib.suppress(SessionLost):
                    await self._session.commands([b"QUIT"], timeout)
            self._session.close()
            return
        if self._smtp.is_connected:
            await _quietly_quit(self._smtp, timeout)
