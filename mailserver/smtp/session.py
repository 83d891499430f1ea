"""The SMTP session: aiosmtpd handler hooks that turn commands into delivery decisions.

One ``SmtpSession`` per connection (aiosmtpd calls its ``handle_*`` hooks
and ``auth_*`` mechanisms).  aiosmtpd owns the protocol (syntax, state order,
DATA framing, STARTTLS); this class owns the decisions:

* MAIL: who may use this reverse-path (``Router.check_sender``); opens one
  delivery transaction (mailserver.delivery) for the envelope;
* RCPT: routing, role policy, recipient limit, quota per recipient
  (``add_local`` with the SIZE= hint, RFC 1870);
* DATA: content checks, From header ownership on submission, header
  additions, then ``commit``; 250 only after ``commit`` returned (durable);
* anything that ends a transaction without DATA (RSET, a new EHLO, QUIT, a
  lost connection, a refused message) aborts it, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from directory.auth import AuthenticationFailed, AuthenticationThrottled, Authenticator
from directory.model import Account
from federation.rspamd import ScanRequest
from mailserver import delivery
from mailserver.delivery import DeliveryTarget, DeliveryTransaction, LocalRecipient
from mailserver.delivery import Envelope as DeliveryEnvelope
from mailserver.group_mail import GroupMailSink, group_mail
from mailserver.smtp import headers, replies
from mailserver.smtp.addresses import AddressError, Mailbox, parse_mailbox, parse_path
from mailserver.smtp.config import ListenerKind, SmtpConfig
from mailserver.smtp.identity import identity_refusal
from mailserver.smtp.inbound_auth import QUARANTINE_MAILBOX, InboundCheck, verdict_fields
from mailserver.smtp.routing import Refusal, Router
from mailserver.smtp.spam import SpamFilter
from mailserver.store.model import QuotaExceeded

log = logging.getLogger("schulhof.smtp")

_QUOTA_REPLIES = {
    delivery.RecipientOutcome.OVER_QUOTA_TEMPORARY: replies.OVER_QUOTA_TEMPORARY,
    delivery.RecipientOutcome.OVER_QUOTA_PERMANENT: replies.OVER_QUOTA_PERMANENT,
}


@dataclass
class SessionServices:
    """What every session of one SMTP service shares."""

    config: SmtpConfig
    router: Router
    authenticator: Authenticator
    target: DeliveryTarget
    # SPF/DKIM/DMARC of mail arriving on the MX; None turns the checks off.
    inbound_check: InboundCheck | None = None
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    # Commits and group-mail sinks in flight (stop() waits for them before closing).
    committing: set[asyncio.Task[Any]] = field(default_factory=set)
    # rspamd on the MX (mailserver.smtp.spam); None: no spam filtering.
    spam_filter: SpamFilter | None = None
    # (listener, "rcpt" or "data", reply) for every RCPT and end-of-data reply (metrics).
    observe: Callable[[str, str, str], None] | None = None
    # Told about each committed mail to a group (the messenger bridge); None: nobody.
    group_mail: GroupMailSink | None = None


PARSE_IN_THREAD = 256 * 1024  # bytes: a group mail this large is parsed in a thread


@dataclass(frozen=True)
class GroupSender:
    verified: bool
    login: str


@dataclass
class _Transaction:
    """Our side of one aiosmtpd envelope: the open delivery transaction and its recipients."""

    envelope: Envelope
    delivery: DeliveryTransaction
    reverse_path: str
    size_hint: int
    account_ids: set[int] = field(default_factory=set)
    recipients: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # group names among the recipients
    dmarc_pass: bool = False  # MX: the From domain's DMARC check passed (RFC 7489 4.2)
    auth_fields: str = ""  # MX: the SPF/DKIM/DMARC verdict for the accepted-mail log line


def _path(address: str) -> Mailbox | None:
    # aiosmtpd hands us what SchulhofSMTP._getaddr produced: "<>" or a Mailbox's str().
    return None if address == "<>" else parse_path(f"<{address}>")


def _size_hint(mail_options: list[str]) -> int:
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


class SmtpSession:
    """aiosmtpd handler for one connection on one listener."""

    def __init__(self, services: SessionServices, kind: ListenerKind) -> None:
        self._services = services
        self._kind = kind
        self._tx: _Transaction | None = None
        self.account: Account | None = None
        self._owned: dict[str, bool] = {}
        self._aborts: set[asyncio.Future[None]] = set()

    # --- greeting ---------------------------------------------------------------------------
    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        """RFC 5321 4.1.1.1; our extensions added, AUTH only where it is offered."""
        session.host_name = hostname
        await self.abort()
        keep = [r[4:] for r in responses[1:] if r[4:] != "HELP"
                and (self._kind.requires_auth or not r[4:].startswith("AUTH"))]
        keywords = [*keep, "PIPELINING", "ENHANCEDSTATUSCODES", "CHUNKING"]
        return [responses[0]] + [f"250-{k}" for k in keywords[:-1]] + [f"250 {keywords[-1]}"]

    async def handle_NOOP(self, server: SMTP, session: Session, envelope: Envelope,
                          arg: str) -> str:
        return replies.OK

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self.abort()
        return replies.OK

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self.abort()
        return replies.BYE

    async def handle_VRFY(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str) -> str:
        # RFC 5321 3.5.3: 252 for everyone, so VRFY does not list our users.
        return replies.VRFY_UNKNOWN

    # --- authentication (RFC 4954; mechanisms RFC 4616 PLAIN and LOGIN) ----------------------
    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        blob: bytes | None
        if len(args) == 1:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):  # "*" or bad base64: aiosmtpd replied 501
                return AuthResult(success=False, handled=True)
            blob = answer
        else:
            blob = _b64(args[1])
            if blob is None:
                return AuthResult(success=False, handled=False,
                                  message="501 5.5.2 Cannot decode base64")
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            return AuthResult(success=False, handled=False,
                              message="501 5.5.2 Cannot split the PLAIN response")
        return await self._authenticate(server, parts[1], parts[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        login: bytes | None
        if len(args) == 1:
            answer = await server.challenge_auth(server.AuthLoginUsernameChallenge)
            if not isinstance(answer, bytes):  # "*" or bad base64: aiosmtpd replied 501
                return AuthResult(success=False, handled=True)
            login = answer
        else:
            login = _b64(args[1])
            if login is None:
                return AuthResult(success=False, handled=False,
                                  message="501 5.5.2 Cannot decode base64")
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._authenticate(server, login, password)

    async def _authenticate(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        client_ip = _client_ip(server)
        try:
            account = await self._services.authenticator.authenticate(
                login.decode("utf-8", "replace"), password.decode("utf-8", "replace"),
                client_ip)
        except AuthenticationThrottled:
            log.info("event=smtp_auth_throttled ip=%s", client_ip)
            return AuthResult(success=False, handled=False, message=replies.AUTH_THROTTLED)
        except AuthenticationFailed:
            log.info("event=smtp_auth_failed ip=%s", client_ip)
            return AuthResult(success=False, handled=False, message=replies.AUTH_INVALID)
        self.account = account
        log.info("event=smtp_auth_ok ip=%s login=%s", client_ip, account.login)
        return AuthResult(success=True, auth_data=_AuthData(account.id),
                          message="235 2.7.0 Authentication successful")

    # --- the transaction -------------------------------------------------------------------------
    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        await self.abort()
        if self._kind.requires_auth and self.account is None:
            return "530 5.7.0 Authentication required"
        try:
            mailbox = _path(address)
        except AddressError:
            return "553 5.1.3 Malformed address"
        if mailbox is not None and not mailbox.is_ascii and not envelope.smtp_utf8:
            return replies.NON_ASCII_ADDRESS
        if self.account is not None and mailbox is not None:
            # The same answer as Router.check_sender, cached for the connection.
            if not await self._may_send_as(self.account, str(mailbox)):
                return replies.sender_not_owned(str(mailbox))
        else:
            try:
                await self._services.router.check_sender(self.account, mailbox)
            except Refusal as refusal:
                return refusal.reply
        reverse_path = "" if mailbox is None else str(mailbox)
        transaction = self._services.target.begin(
            DeliveryEnvelope(mail_from=reverse_path, received_at=self._services.clock()))
        self._tx = _Transaction(envelope, transaction, reverse_path, _size_hint(mail_options))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.SENDER_OK

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        reply = await self._rcpt(server, session, envelope, address, rcpt_options)
        if self._services.observe is not None:
            self._services.observe(self._kind.value, "rcpt", reply)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await self._data(server, session, envelope)
        if self._services.observe is not None:
            self._services.observe(self._kind.value, "data", reply)
        return reply

    async def _rcpt(self, server: SMTP, session: Session, envelope: Envelope,
                    address: str, rcpt_options: list[str]) -> str:
        tx = self._tx
        if tx is None or tx.envelope is not envelope:
            return "503 5.5.1 Need MAIL command"
        if len(envelope.rcpt_tos) >= self._services.config.limits.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        try:
            mailbox = _path(address)
        except AddressError:
            return "553 5.1.3 Malformed address"
        if mailbox is None:
            return replies.NULL_RECIPIENT
        if not mailbox.is_ascii and not envelope.smtp_utf8:
            return replies.NON_ASCII_ADDRESS
        try:
            route = await self._services.router.route(self.account, mailbox)
        except Refusal as refusal:
            return refusal.reply
        if route.remote is not None:
            tx.delivery.add_remote(route.remote)
        refused = await self._add_local(tx, route.account_ids)
        if refused is not None:
            return refused
        if route.group is not None and route.group not in tx.groups:
            tx.groups.append(route.group)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        tx.recipients.append(address)
        return replies.RECIPIENT_OK

    async def _add_local(self, tx: _Transaction, account_ids: tuple[int, ...]) -> str | None:
        """Add each account once; None if at least one was accepted (or all were already in)."""
        fresh = [i for i in account_ids if i not in tx.account_ids]
        if not fresh:
            return None
        recipients = [LocalRecipient(account_id) for account_id in fresh]
        # One call for a whole group: the store checks all quotas in one query.
        outcomes = await tx.delivery.add_locals(recipients, tx.size_hint)
        for account_id, outcome in zip(fresh, outcomes, strict=True):
            if outcome is delivery.RecipientOutcome.ACCEPTED:
                tx.account_ids.add(account_id)
            else:
                # A group member over quota does not stop the others; a DSN is future work.
                log.info("event=smtp_rcpt_over_quota account_id=%d outcome=%s",
                         account_id, outcome.value)
        if delivery.RecipientOutcome.ACCEPTED in outcomes:
            return None
        if delivery.RecipientOutcome.OVER_QUOTA_TEMPORARY in outcomes:
            return _QUOTA_REPLIES[delivery.RecipientOutcome.OVER_QUOTA_TEMPORARY]
        return _QUOTA_REPLIES[outcomes[0]]

    async def _data(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        tx, self._tx = self._tx, None
        if tx is None or tx.envelope is not envelope:
            return "503 5.5.1 Need MAIL command"
        content = envelope.original_content or b""
        refusal = await self._check_content(content)
        if refusal is not None:
            await tx.delivery.abort()
            return refusal
        services = self._services
        if self._kind is ListenerKind.MX and services.inbound_check is not None:
            checked = await self._authenticate_inbound(server, session, tx, content)
            if isinstance(checked, str):
                await tx.delivery.abort()
                return checked
            content = checked
        queue_id = secrets.token_hex(8)
        if self._kind is ListenerKind.MX and services.spam_filter is not None:
            decision = await services.spam_filter.check(content, ScanRequest(
                client_ip=_client_ip(server), helo=session.host_name or "",
                mail_from=tx.reverse_path, recipients=tuple(tx.recipients),
                queue_id=queue_id))
            if decision.reply is not None:
                await tx.delivery.abort()
                return decision.reply
            if decision.quarantine:
                tx.delivery.redirect_local(QUARANTINE_MAILBOX)
            content = decision.headers + content
        now = services.clock()
        added = b""
        if self.account is not None:
            added = headers.submission_fixups(content, hostname=services.config.hostname,
                                              now=now, unique=queue_id)
        trace = headers.trace_headers(tx.reverse_path, headers.TraceInfo(
            helo=session.host_name or "", client_ip=_client_ip(server),
            by_host=services.config.hostname, queue_id=queue_id, received_at=now,
            extended=session.extended_smtp, authenticated=self.account is not None,
            utf8=envelope.smtp_utf8, tls=_tls_info(server),
            for_recipient=tx.recipients[0] if len(tx.recipients) == 1 else None))
        message = trace + added + content
        # The commit runs as its own task so a client that hangs up now does not
        # cancel it half-way: either it is durable (and the 250 may be lost, which
        # SMTP allows: the client retries, RFC 5321 6.1), or it failed as a whole.
        commit = asyncio.ensure_future(tx.delivery.commit(message))
        services.committing.add(commit)
        commit.add_done_callback(services.committing.discard)
        try:
            receipt = await asyncio.shield(commit)
        except asyncio.CancelledError:
            raise
        except QuotaExceeded as exc:
            # The real size no longer fits anyone's quota (RFC 1870 6): nothing was stored.
            return replies.OVER_QUOTA_PERMANENT if exc.permanent else replies.OVER_QUOTA_TEMPORARY
        except delivery.DeliveryRefused as exc:
            # A Sieve reject (RFC 5429 2.1): refused in the dialogue, no backscatter.
            return replies.refused_by_rules(exc.reason)
        except Exception:
            log.exception("event=smtp_commit_failed id=%s", queue_id)
            return replies.LOCAL_ERROR
        # One line per accepted message (with the verdict on the MX): a log line is a
        # write, and this is the hot path (issue 15).
        log.info("event=smtp_accepted id=%s listener=%s size=%d local=%d remote=%d%s",
                 queue_id, self._kind.value, len(message), len(receipt.stored),
                 len(receipt.queued_ids), tx.auth_fields)
        if tx.groups and services.group_mail is not None:
            # After the 250, not before it: the sink (the room bridge) costs the sender
            # no time; stop() waits for it as for a commit.
            # Who the mail is from is known for a login, and for outside mail only
            # after DMARC passed (quarantined mail never passed).
            sender = GroupSender(verified=self.account is not None or tx.dmarc_pass,
                                 login=self.account.login if self.account else "")
            told = asyncio.ensure_future(
                self._tell_groups(services.group_mail, tx.groups, message, sender))
            services.committing.add(told)
            told.add_done_callback(services.committing.discard)
        return f"250 2.0.0 OK queued as {queue_id}"

    @staticmethod
    async def _tell_groups(sink: GroupMailSink, groups: list[str], message: bytes,
                           sender: GroupSender) -> None:
        """The mail is stored: tell the sink (the bridge) once per group.  Its failure
        does not undo the delivery, so it is logged, not answered."""
        for group in groups:
            try:
                if len(message) > PARSE_IN_THREAD:  # attachments to decode: off the loop
                    mail = await asyncio.to_thread(group_mail, group, message,
                                                   verified=sender.verified,
                                                   sender_login=sender.login)
                else:
                    mail = group_mail(group, message, verified=sender.verified,
                                      sender_login=sender.login)
                await sink.group_mail_delivered(mail)
            except Exception:
                log.exception("event=group_mail_sink_failed group=%s", group)

    async def _authenticate_inbound(self, server: SMTP, session: Session, tx: _Transaction,
                                    content: bytes) -> bytes | str:
        """The message with our Authentication-Results, or the refusal (RFC 7489 6.6)."""
        assert self._services.inbound_check is not None
        try:
            verdict = await self._services.inbound_check(
                content, _client_ip(server), tx.reverse_path, session.host_name or "")
        except Exception:
            # Authentication is a judgement on the mail, not a reason to lose it.
            log.exception("event=smtp_inbound_auth_failed")
            return content
        if verdict.reject and verdict.dmarc.own_domain:
            return replies.own_domain_forged(verdict.dmarc.from_domain)
        if verdict.reject:
            return replies.dmarc_reject(verdict.dmarc.from_domain)
        if verdict.quarantine:
            tx.delivery.redirect_local(QUARANTINE_MAILBOX)
        else:
            tx.dmarc_pass = verdict.dmarc.result == "pass"
        tx.auth_fields = " " + verdict_fields(verdict)
        return verdict.apply(content)

    async def _check_content(self, content: bytes) -> str | None:
        what = headers.bad_bytes(content)
        if what is not None:
            return replies.BAD_MESSAGE_BYTES.format(what=what)
        if self.account is None:
            return None
        account = self.account
        return await identity_refusal(content,
                                      lambda address: self._may_send_as(account, address))

    async def _may_send_as(self, account: Account, address: str) -> bool:
        """Header address check (mailserver.smtp.identity), cached per session."""
        owned = self._owned.get(address.lower())
        if owned is None:
            try:
                mailbox = parse_mailbox(address)
            except AddressError:
                return False
            owned = await self._services.router.may_send_as(account, mailbox)
            self._owned[address.lower()] = owned
        return owned

    def envelope_dropped(self, envelope: Envelope) -> None:
        """aiosmtpd forgot ``envelope``: abort its transaction now (in a task; we are sync)."""
        tx = self._tx
        if tx is not None and tx.envelope is envelope:
            self._tx = None
            task = asyncio.ensure_future(tx.delivery.abort())
            self._aborts.add(task)
            task.add_done_callback(self._aborts.discard)

    async def abort(self) -> None:
        """End the open transaction, if any, storing nothing."""
        tx, self._tx = self._tx, None
        if tx is not None:
            try:
                await tx.delivery.abort()
            except Exception:
                log.exception("event=smtp_abort_failed")

    async def connection_closed(self) -> None:
        await self.abort()
        if self._aborts:
            await asyncio.gather(*self._aborts, return_exceptions=True)


@dataclass(frozen=True)
class _AuthData:
    """What aiosmtpd keeps in ``session.auth_data``: the account id (no login name, so
    aiosmtpd's deprecated ``login_data`` stays empty)."""

    account_id: int


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def _client_ip(server: SMTP) -> str:
    peer = server.session.peer if server.session is not None else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"


def _tls_info(server: SMTP) -> headers.TlsInfo | None:
    transport = server.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher() or ("unknown", "", 0)
    return headers.TlsInfo(version=ssl_object.version() or "TLS", cipher=cipher[0],
                           bits=int(cipher[2] or 0))
