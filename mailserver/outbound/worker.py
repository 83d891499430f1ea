"""The queue worker: takes due rows, finds the MX, signs, sends, retries or bounces.

RFC 5321 5.1 (MX in preference order; the next one when a host cannot be
reached), 4.5.4.1 (retry with back-off, give up after days), 6.1 (a 250 to
DATA moves the responsibility: only then is a row ``sent``), RFC 7505 (null
MX: bounce at once), RFC 3464 (DSNs: bounces and delay warnings; never one
for a message with the null sender, RFC 5321 4.5.5).

Shape of the work: rows claimed together are grouped into *messages* (rows
of one submission share body, sender and time) and then by recipient
*domain*.  Each domain is handled by at most ``per_domain_connections``
tasks at once, each with one SMTP connection that carries all of its
messages (a class's worth of mail to a partner school is one connection).
A message going to three domains is DKIM-signed once.

Transport security per domain and host comes from
:mod:`mailserver.outbound.tls_policy` (MTA-STS, RFC 8461; DANE, RFC 7672):
hosts outside an enforced policy are skipped, and a host that cannot give
the TLS asked for is a temporary failure (``event=mta_sts_refused`` /
``event=dane_refused``), never a bounce.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from federation.resolver import DnsError, DnsNotFound, DnsTemporaryError, MxHost, NullMx
from federation.smtp_out import (
    OPPORTUNISTIC,
    ConnectionFailed,
    ConnectionLost,
    MessageResult,
    TlsInfo,
    TlsRefused,
    TlsRequirement,
)
from mailserver.outbound.dsn import DELAYED, FAILED, DsnRecipient, DsnReport, build_dsn
from mailserver.outbound.queue import OutboundQueue, QueueEntry
from mailserver.outbound.schedule import RetrySchedule
from mailserver.outbound.tls_policy import DaneUnavailable, DomainTls, TlsPolicies
from mailserver.outbound.trace import strip_delivery_fields

log = logging.getLogger("schulhof.outbound")


class Resolving(Protocol):
    async def mx(self, domain: str) -> list[MxHost] | NullMx: ...
    async def addresses(self, host: str) -> list[str]: ...


class Connection(Protocol):
    host: str
    tls: TlsInfo

    async def send(self, mail_from: str, recipients: list[str],
                   message: bytes) -> MessageResult: ...
    async def close(self) -> None: ...


class Connecting(Protocol):
    async def connect(self, host: str, address: str,
                      requirement: TlsRequirement = OPPORTUNISTIC) -> Connection: ...


class Signing(Protocol):
    async def sign(self, message: bytes) -> bytes: ...


class BounceSink(Protocol):
    async def deliver(self, sender: str, message: bytes) -> bool: ...


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class WorkerConfig:
    hostname: str  # Reporting-MTA of our DSNs
    postmaster: str  # From of our DSNs
    schedule: RetrySchedule
    poll_seconds: float = 1.0
    # After a claim that found rows, look again this soon: mail tends to come in
    # runs (a class's worth), and nothing wakes the worker on commit yet.
    busy_poll_seconds: float = 0.05
    busy_window_seconds: float = 2.0  # ... for this long after the last rows were found
    batch_size: int = 200
    per_domain_connections: int = 2
    max_in_flight: int = 1000  # rows
    lease: dt.timedelta = dt.timedelta(minutes=30)
    keep_finished: dt.timedelta = dt.timedelta(days=7)
    stop_grace_seconds: float = 10.0


@dataclass(frozen=True)
class Failure:
    """Why recipients were not delivered: an SMTP-style reply and where it came from."""

    status: str  # RFC 3463
    diagnostic: str  # "550 5.1.1 ..." (remote reply, or ours in the same form)
    permanent: bool
    remote_mta: str = ""


class _RouteFailed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.diagnostic)
        self.failure = failure


class _Message:
    """Rows of one submission; body read and signed at most once per claim."""

    def __init__(self, first: QueueEntry) -> None:
        self.mail_from = first.mail_from
        self.blob_id = first.blob_id
        self.created_at = first.created_at
        self._body: bytes | None = None
        self._signed: asyncio.Task[bytes] | None = None

    async def body(self, queue: OutboundQueue) -> bytes:
        if self._body is None:
            self._body = await queue.body(self.blob_id)
        return self._body

    def prepare(self, queue: OutboundQueue, signer: Signing | None) -> asyncio.Task[bytes]:
        """Start reading and signing the body (once); :meth:`signed` collects the result.

        Called for the next message while the current one is on the wire, so the
        body read and the DKIM signature (a worker thread) overlap the network wait.
        """
        if self._signed is None:
            async def sign() -> bytes:
                # Our Return-Path belongs to the local copies only (RFC 5321 4.4).
                body = strip_delivery_fields(await self.body(queue))
                return await signer.sign(body) if signer is not None else body
            self._signed = asyncio.ensure_future(sign())
            # A failure is raised by signed(); a message never sent must not warn.
            self._signed.add_done_callback(_retrieve_exception)
        return self._signed

    async def signed(self, queue: OutboundQueue, signer: Signing | None) -> bytes:
        return await asyncio.shield(self.prepare(queue, signer))


def _retrieve_exception(task: asyncio.Future[bytes]) -> None:
    if not task.cancelled():
        task.exception()


Batch = list[tuple[_Message, list[QueueEntry]]]


class OutboundWorker:
    def __init__(self, config: WorkerConfig, queue: OutboundQueue, client: Connecting,
                 resolver: Resolving, signer: Signing | None, bounces: BounceSink, *,
                 clock: Callable[[], dt.datetime] = utcnow,
                 tls: TlsPolicies | None = None) -> None:
        self.config = config
        self._tls = tls or TlsPolicies(None, None)
        self.queue = queue
        self._client = client
        self._resolver = resolver
        self._signer = signer
        self._bounces = bounces
        self._clock = clock
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: dict[int, QueueEntry] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_purge: dt.datetime | None = None
        self._last_found = float("-inf")  # loop time of the last claim that found rows

    # --- driving -------------------------------------------------------------------------
    def wake(self) -> None:
        """New rows are waiting (e.g. just committed): look now instead of at the next poll."""
        self._wake.set()

    async def recover(self) -> int:
        """Rows a killed process left in ``delivering`` go back to the queue (start-up)."""
        count = await self.queue.recover(self._clock())
        if count:
            log.info("event=outbound_recovered rows=%d", count)
        return count

    async def run(self) -> None:
        """Claim and deliver until cancelled or :meth:`stop`."""
        await self.recover()
        while not self._stopping:
            try:
                await self._purge_now_and_then()
                claimed = await self._claim_and_dispatch()
                now = asyncio.get_running_loop().time()
                if claimed:
                    self._last_found = now
                if claimed >= self.config.batch_size:
                    continue  # more may be due right now
                await self._idle(busy=now - self._last_found < self.config.busy_window_seconds)
            except Exception:  # e.g. the database is briefly away: keep the worker alive
                log.exception("event=outbound_loop_failed")
                await asyncio.sleep(self.config.poll_seconds)

    async def process_due(self) -> int:
        """Claim what is due once and wait until all of it is finished (tests, CLI)."""
        count = await self._claim_and_dispatch()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        return count

    async def stop(self) -> None:
        """No new work; finish what is in flight (bounded), hand back the rest."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.config.stop_grace_seconds)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._in_flight:
            await self.queue.release(list(self._in_flight), self._clock())
            self._in_flight.clear()

    async def _idle(self, busy: bool = False) -> None:
        timeout = self.config.busy_poll_seconds if busy else self.config.poll_seconds
        due = await self.queue.next_due()
        if due is not None:
            timeout = min(timeout, max(0.05, (due - self._clock()).total_seconds()))
        self._wake.clear()
        # The wake-up and the first finished delivery: futures of different results.
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
        done_any = (asyncio.ensure_future(asyncio.wait(
            set(self._tasks), return_when=asyncio.FIRST_COMPLETED)) if self._tasks else None)
        if done_any is not None:
            waiters.add(done_any)
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _purge_now_and_then(self) -> None:
        now = self._clock()
        if self._last_purge is None or now - self._last_purge > dt.timedelta(hours=1):
            self._last_purge = now
            await self.queue.purge_finished(now - self.config.keep_finished)

    async def _claim_and_dispatch(self) -> int:
        room = min(self.config.batch_size, self.config.max_in_flight - len(self._in_flight))
        if room <= 0 or self._stopping:
            return 0
        claimed = [e for e in await self.queue.claim(self._clock(), self.config.lease, room)
                   if e.id not in self._in_flight]  # our own row whose lease ran out
        for entry in claimed:
            self._in_flight[entry.id] = entry
        messages: dict[tuple[object, ...], _Message] = {}
        by_domain: dict[str, dict[tuple[object, ...], list[QueueEntry]]] = {}
        for entry in claimed:
            messages.setdefault(entry.message_key, _Message(entry))
            by_domain.setdefault(entry.domain, {}).setdefault(entry.message_key, []).append(entry)
        for domain, grouped in by_domain.items():
            items: Batch = [(messages[key], entries) for key, entries in grouped.items()]
            lanes = min(self.config.per_domain_connections, len(items))
            for lane in range(lanes):
                task = asyncio.ensure_future(self._deliver_domain(domain, items[lane::lanes]))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return len(claimed)

    # --- one domain ------------------------------------------------------------------------
    async def _deliver_domain(self, domain: str, items: Batch) -> None:
        slot = self._slots.setdefault(domain,
                                      asyncio.Semaphore(self.config.per_domain_connections))
        try:
            async with slot:
                await self._deliver_to_hosts(domain, items)
        except Exception:
            log.exception("event=outbound_task_failed domain=%s", domain)
            ids = [e.id for _, entries in items for e in entries if e.id in self._in_flight]
            later = self._clock() + self.config.schedule.first_retry
            with contextlib.suppress(Exception):
                await self.queue.reschedule(ids, later, "451 4.3.0 internal error")
            self._forget(ids)

    async def _deliver_to_hosts(self, domain: str, items: Batch) -> None:
        try:
            hosts = await self._route(domain)
        except _RouteFailed as failed:
            for message, entries in items:
                await self._fail(message, [(e, failed.failure) for e in entries])
            return
        pending = list(items)
        last = Failure("4.4.1", f"451 4.4.1 no mail server of {domain} answered", False)
        policy = await self._tls.domain(domain)
        allowed = policy.usable_hosts(hosts)
        if not allowed:
            last = Failure("4.7.5", f"451 4.7.5 MTA-STS: no MX host of {domain} is allowed "
                           "by its policy", False)
        for mx in allowed:
            if not pending:
                break
            try:
                addresses = await self._resolver.addresses(mx.host)
            except DnsError as exc:
                last = Failure("4.4.3", f"451 4.4.3 address lookup of {mx.host} failed: "
                               f"{type(exc).__name__}", False, mx.host)
                continue
            try:
                requirement = await self._tls.requirement(policy, mx.host)
            except DaneUnavailable as exc:
                log.warning("event=dane_refused domain=%s host=%s reason=%r", domain, mx.host,
                            str(exc))
                last = Failure("4.7.5", f"451 4.7.5 {exc}", False, mx.host)
                continue
            for address in addresses:
                if not pending:
                    break
                try:
                    connection = await self._client.connect(mx.host, address, requirement)
                except TlsRefused as exc:
                    event = "dane_refused" if requirement.dane else "mta_sts_refused"
                    log.warning("event=%s domain=%s host=%s address=%s reason=%r", event,
                                domain, mx.host, address, exc.reason)
                    last = Failure("4.7.5", f"451 4.7.5 {exc.reason}", False, mx.host)
                    continue
                except ConnectionFailed as exc:
                    log.info("event=outbound_connect_failed host=%s address=%s reason=%r",
                             mx.host, address, exc.reason)
                    last = Failure("4.4.1", f"451 4.4.1 {exc.reason}", False, mx.host)
                    continue
                _log_testing_failure(policy, connection)
                try:
                    pending, last = await self._send_all(connection, pending, last)
                finally:
                    await connection.close()
        for message, entries in pending:
            await self._fail(message, [(e, last) for e in entries])

    async def _route(self, domain: str) -> list[MxHost]:
        """MX hosts to try, in order; _RouteFailed when there is nothing to try."""
        try:
            found = await self._resolver.mx(domain)
        except DnsNotFound:
            raise _RouteFailed(Failure(
                "5.1.2", f"550 5.1.2 the domain {domain} does not exist", True)) from None
        except DnsTemporaryError:
            raise _RouteFailed(Failure(
                "4.4.3", f"451 4.4.3 DNS lookup of {domain} failed", False)) from None
        if isinstance(found, NullMx):
            raise _RouteFailed(Failure(
                "5.1.10", f"556 5.1.10 {domain} accepts no mail (null MX)", True))
        if not found:
            raise _RouteFailed(Failure(
                "5.1.2", f"550 5.1.2 {domain} has no mail server", True))
        return found

    async def _send_all(self, connection: Connection, pending: Batch,
                        last: Failure) -> tuple[Batch, Failure]:
        """Send messages over one connection; returns what is left if it breaks."""
        pending = list(pending)
        while pending:
            message, entries = pending[0]
            if self._stopping:
                ids = [e.id for _, batch in pending for e in batch]
                await self.queue.release(ids, self._clock())
                self._forget(ids)
                return [], last
            data = await message.signed(self.queue, self._signer)
            if len(pending) > 1:
                pending[1][0].prepare(self.queue, self._signer)
            try:
                result = await connection.send(message.mail_from,
                                               [e.recipient for e in entries], data)
            except ConnectionLost as exc:
                log.info("event=outbound_connection_lost host=%s reason=%r",
                         connection.host, exc.reason)
                return pending, Failure("4.4.2", f"451 4.4.2 {exc.reason}", False,
                                        connection.host)
            pending.pop(0)
            await self._record(message, entries, result)
        return pending, last

    async def _record(self, message: _Message, entries: list[QueueEntry],
                      result: MessageResult) -> None:
        replies = {r.recipient: r.reply for r in result.recipients}
        sent = [e.id for e in entries if replies[e.recipient].ok]
        # First thing after the remote 250: the crash window for a duplicate stays tiny.
        await self.queue.mark_sent(sent)
        self._forget(sent)
        if sent:
            log.info("event=outbound_sent ids=%s host=%s %s", ",".join(map(str, sent)),
                     result.host, result.tls.log_fields())
        failed = [(e, Failure(replies[e.recipient].enhanced, replies[e.recipient].diagnostic,
                              replies[e.recipient].permanent, result.host))
                  for e in entries if not replies[e.recipient].ok]
        if failed:
            await self._fail(message, failed)

    # --- outcomes ------------------------------------------------------------------------
    async def _fail(self, message: _Message, failed: list[tuple[QueueEntry, Failure]]) -> None:
        permanent = [(e, f) for e, f in failed if f.permanent]
        if permanent:
            await self._bounce(message, permanent)
        temporary = [(e, f) for e, f in failed if not f.permanent]
        if temporary:
            await self._defer(message, temporary)

    async def _defer(self, message: _Message, failed: list[tuple[QueueEntry, Failure]]) -> None:
        schedule = self.config.schedule
        now = self._clock()
        give_up: list[tuple[QueueEntry, Failure]] = []
        warn: list[DsnRecipient] = []
        warned_ids: list[int] = []
        for entry, failure in failed:
            retry_at = schedule.next_attempt(entry.created_at, entry.attempts, now)
            if retry_at is None:
                give_up.append((entry, Failure("5.4.7", failure.diagnostic, True,
                                               failure.remote_mta)))
                continue
            await self.queue.reschedule([entry.id], retry_at, failure.diagnostic)
            self._forget([entry.id])
            log.info("event=outbound_deferred id=%d attempts=%d retry_at=%s reason=%r",
                     entry.id, entry.attempts, retry_at.isoformat(), failure.diagnostic)
            if schedule.should_warn(entry.created_at, now, entry.delay_warned_at is not None):
                warned_ids.append(entry.id)
                warn.append(DsnRecipient(entry.recipient, DELAYED, failure.status,
                                         failure.diagnostic, failure.remote_mta, now,
                                         schedule.give_up_at(entry.created_at)))
        if warn:
            if message.mail_from:
                await self._send_dsn(message, warn)
            await self.queue.mark_warned(warned_ids, now)
        if give_up:
            await self._bounce(message, give_up)

    async def _bounce(self, message: _Message, failed: list[tuple[QueueEntry, Failure]]) -> None:
        ids = [e.id for e, _ in failed]
        error = "; ".join(dict.fromkeys(f.diagnostic for _, f in failed))
        if not message.mail_from:
            # RFC 5321 4.5.5 / RFC 3464 2: never a DSN about a DSN.
            log.warning("event=bounce_dropped reason=null_sender ids=%s error=%r",
                        ",".join(map(str, ids)), error)
        else:
            now = self._clock()
            await self._send_dsn(message, [
                DsnRecipient(e.recipient, FAILED, f.status, f.diagnostic, f.remote_mta, now)
                for e, f in failed])
        await self.queue.mark_bounced(ids, error)
        self._forget(ids)
        log.info("event=outbound_bounced ids=%s error=%r", ",".join(map(str, ids)), error)

    async def _send_dsn(self, message: _Message, recipients: list[DsnRecipient]) -> None:
        report = DsnReport(self.config.hostname, self.config.postmaster, message.mail_from,
                           await message.body(self.queue), message.created_at,
                           tuple(recipients))
        dsn = build_dsn(report, now=self._clock())
        try:
            delivered = await self._bounces.deliver(message.mail_from, dsn)
        except Exception:
            log.exception("event=dsn_failed action=%s", recipients[0].action)
            return
        log.info("event=dsn action=%s recipients=%d delivered=%s", recipients[0].action,
                 len(recipients), str(delivered).lower())

    def _forget(self, ids: list[int]) -> None:
        for entry_id in ids:
            self._in_flight.pop(entry_id, None)


def _log_testing_failure(policy: DomainTls, connection: Connection) -> None:
    """RFC 8461 5: in mode testing, a failed check is reported, the mail still goes."""
    if policy.checked and not policy.enforced and not connection.tls.verified:
        log.warning("event=mta_sts_testing_failure domain=%s host=%s reason=tls_unverified %s",
                    policy.domain, connection.host, connection.tls.log_fields())
