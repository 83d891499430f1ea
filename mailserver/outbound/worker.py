"""The queue worker: takes due rows, finds the MX, signs, sends, retries or bounces.

RFC 5321 5.1 (MX in preference order; the next one when a host cannot be
reached), 4.5.4.1 (retry with back-off, give up after days), 6.1 (a 250 to
DATA moves the responsibility: only then is a row ``sent``), RFC 7505 (null
MX: bounce at once), RFC 3464 (DSNs: bounces and delay warnings; never one
for a message with the null sender, RFC 5321 4.5.5).

Shape of the work: rows claimed together are grouped into *messages* (rows
of one submission share body, sender and time) and then by recipient
*domain*.  Each domain has one waiting line of messages and at most
``per_domain_connections`` *lanes*: tasks with one SMTP connection each that
take the next message from the line until it is empty.  While the worker
runs, a lane whose line is empty keeps its connection open for
``connection_idle_seconds`` and takes what the next claims bring (like
Postfix's connection cache), so a steady stream of mail to a partner school
pays for its TLS handshakes once, not per claim.  A message going to three
domains is DKIM-signed once, and the claim's bodies (up to
``prefetch_body_bytes`` each) are read in one query, not one per message.
With PIPELINING a lane opens the next message's transaction behind the
current message (RFC 2920 3.1): one round trip per message, not two.
The remote 250 is recorded (``sent``) by one writer for all lanes: rows that
got their 250 meanwhile share a commit.

Transport security per domain and host comes from
:mod:`mailserver.outbound.tls_policy` (MTA-STS, RFC 8461; DANE, RFC 7672):
hosts outside an enforced policy are skipped, and a host that cannot give
the TLS asked for is a temporary failure (``event=mta_sts_refused`` /
``event=dane_refused``), never a bounce.
"""

from __future__ import annotations

import asyncio
import collections
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
    NextEnvelope,
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

    @property
    def usable(self) -> bool: ...

    @property
    def pipelining(self) -> bool: ...

    async def send(self, mail_from: str, recipients: list[str], message: bytes,
                   then: NextEnvelope | None = None) -> MessageResult: ...
    async def close(self, timeout: float | None = None) -> None: ...


class Connecting(Protocol):
    async def connect(self, host: str, address: str,
                      requirement: TlsRequirement = OPPORTUNISTIC) -> Connection: ...


class Signing(Protocol):
    async def sign(self, message: bytes) -> bytes: ...


class BounceSink(Protocol):
    async def deliver(self, sender: str, message: bytes) -> bool: ...


QUIT_WAIT_STOPPING = 1.0  # seconds
_MIN_WAIT = 0.05  # seconds: the shortest wait between two claims when nothing woke us


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
    per_domain_connections: int = 8
    # An open connection with nothing to send waits this long for more (run() only).
    connection_idle_seconds: float = 5.0
    max_in_flight: int = 1000  # rows
    # Bodies up to this size are read with the claim, together (larger: one by one).
    prefetch_body_bytes: int = 64 * 1024
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

    def known_body(self, body: bytes | None) -> None:
        if body is not None and self._body is None:
            self._body = body

    def envelope(self, entries: list[QueueEntry]) -> NextEnvelope | None:
        """The transaction to open ahead of sending; None while the body is unread
        (BODY=8BITMIME depends on it; the signature adds ASCII only)."""
        if self._body is None:
            return None
        return NextEnvelope(self.mail_from, tuple(e.recipient for e in entries),
                            not self._body.isascii())

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


Item = tuple[_Message, list[QueueEntry]]
Batch = list[Item]


class _Destination:
    """One recipient domain: its waiting messages and the lanes working them."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.pending: collections.deque[Item] = collections.deque()
        self.lanes = 0  # lane tasks running (connecting, sending or idle)
        self.connected = 0  # ... of which hold a working connection
        self.idle: collections.deque[asyncio.Future[None]] = collections.deque()
        # Per claim: may an idle lane's connection (host, requirement) still be used?
        self.rechecks: dict[tuple[str, TlsRequirement], asyncio.Future[bool]] = {}

    def take_all(self) -> Batch:
        items = list(self.pending)
        self.pending.clear()
        return items

    def wake_idle(self, count: int) -> int:
        """Hands new work to up to ``count`` idle lanes; how many were woken."""
        woken = 0
        while self.idle and woken < count:
            waiter = self.idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                woken += 1
        return woken

    async def wait_for_work(self, seconds: float) -> bool:
        """An idle lane waits for the next message; False when none came in time."""
        waiter = asyncio.get_running_loop().create_future()
        self.idle.append(waiter)
        try:
            await asyncio.wait_for(waiter, seconds)
        except TimeoutError:
            return False
        finally:
            if waiter in self.idle:
                self.idle.remove(waiter)
        return True


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
        self._destinations: dict[str, _Destination] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._keep_connections = False  # lanes wait for more work (only while run() runs)
        self._unsaved_sent: list[int] = []  # rows with a remote 250, not yet marked sent
        self._saving: asyncio.Task[None] | None = None
        self._in_flight: dict[int, QueueEntry] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_purge: dt.datetime | None = None
        self._last_found = float("-inf")  # loop time of the last claim that found rows
        # Told each outcome per recipient ("sent", "deferred", "bounced") and how many
        # (the metrics); None: nobody counts.
        self.on_result: Callable[[str, int], None] | None = None

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
        self._keep_connections = True
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
        await self._sent_saved()
        return count

    async def stop(self) -> None:
        """No new work; finish what is in flight (bounded), hand back the rest."""
        self._stopping = True
        self._keep_connections = False
        self._wake.set()
        for destination in self._destinations.values():
            destination.wake_idle(len(destination.idle))
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.config.stop_grace_seconds)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._sent_saved()
        for destination in self._destinations.values():
            destination.pending.clear()
        if self._in_flight:
            await self.queue.release(list(self._in_flight), self._clock())
            self._in_flight.clear()

    async def _idle(self, busy: bool = False) -> None:
        timeout = self.config.busy_poll_seconds if busy else self.config.poll_seconds
        if timeout > _MIN_WAIT:
            # While busy the next look comes as soon as it may anyway: no query for
            # when the next row is due (one read fewer per claim).
            due = await self.queue.next_due()
            if due is not None:
                timeout = min(timeout, max(_MIN_WAIT, (due - self._clock()).total_seconds()))
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
        # The claim's small bodies come in the same transaction (one commit, not two).
        rows, bodies = await self.queue.claim_with_bodies(
            self._clock(), self.config.lease, room, self.config.prefetch_body_bytes)
        claimed = [e for e in rows if e.id not in self._in_flight]  # ours, lease ran out
        for entry in claimed:
            self._in_flight[entry.id] = entry
        messages: dict[tuple[object, ...], _Message] = {}
        by_domain: dict[str, dict[tuple[object, ...], list[QueueEntry]]] = {}
        for entry in claimed:
            messages.setdefault(entry.message_key, _Message(entry))
            by_domain.setdefault(entry.domain, {}).setdefault(entry.message_key, []).append(entry)
        for message in messages.values():
            message.known_body(bodies.get(message.blob_id))
        for domain, grouped in by_domain.items():
            destination = self._destinations.get(domain)
            if destination is None:
                destination = self._destinations[domain] = _Destination(domain)
            destination.pending.extend((messages[key], entries)
                                       for key, entries in grouped.items())
            destination.rechecks.clear()
            self._start_lanes(destination)
        return len(claimed)

    def _start_lanes(self, destination: _Destination) -> None:
        """Idle lanes get the new messages first; more lanes up to the per-domain limit."""
        waiting = len(destination.pending) - destination.wake_idle(len(destination.pending))
        room = self.config.per_domain_connections - destination.lanes
        for _ in range(max(0, min(room, waiting))):
            destination.lanes += 1
            task = asyncio.ensure_future(self._lane(destination))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # --- one domain ------------------------------------------------------------------------
    async def _lane(self, destination: _Destination) -> None:
        # The messages this lane has taken from the line: the one on the wire and
        # the one whose transaction was opened behind it.
        hand: Batch = []
        try:
            await self._lane_session(destination, hand)
        except Exception:
            log.exception("event=outbound_task_failed domain=%s", destination.domain)
            items = hand + (destination.take_all() if destination.lanes == 1 else [])
            ids = [e.id for _, entries in items for e in entries if e.id in self._in_flight]
            later = self._clock() + self.config.schedule.first_retry
            with contextlib.suppress(Exception):
                await self.queue.reschedule(ids, later, "451 4.3.0 internal error")
            self._forget(ids)
        finally:
            destination.lanes -= 1
            if not destination.lanes:
                if not destination.pending:
                    self._destinations.pop(destination.domain, None)
                elif not self._stopping:
                    # Left by a reused connection the remote had closed: a fresh lane.
                    self._start_lanes(destination)

    async def _fail_line(self, destination: _Destination, failure: Failure) -> None:
        """Nothing of the domain could be reached: its waiting messages are failed.

        Unless another lane holds a working connection: it takes them instead.
        """
        if destination.connected:
            return
        for message, entries in destination.take_all():
            await self._fail(message, [(e, failure) for e in entries])

    async def _lane_session(self, destination: _Destination, hand: Batch) -> None:
        """One lane: MX hosts in order; a connection sends until the line is empty."""
        domain = destination.domain
        try:
            hosts = await self._route(domain)
        except _RouteFailed as failed:
            await self._fail_line(destination, failed.failure)
            return
        last = Failure("4.4.1", f"451 4.4.1 no mail server of {domain} answered", False)
        policy = await self._tls.domain(domain)
        allowed = policy.usable_hosts(hosts)
        if not allowed:
            last = Failure("4.7.5", f"451 4.7.5 MTA-STS: no MX host of {domain} is allowed "
                           "by its policy", False)
        for mx in allowed:
            if not destination.pending:
                return
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
                if not destination.pending:
                    return
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
                destination.connected += 1
                try:
                    lost = await self._send_all(connection, destination, hand, requirement)
                finally:
                    destination.connected -= 1
                    # Stopping: QUIT, but a remote slow to answer it does not hold us up.
                    await connection.close(QUIT_WAIT_STOPPING if self._stopping else None)
                if lost is None:
                    return
                last = lost
        await self._fail_line(destination, last)

    async def _recheck(self, destination: _Destination, host: str,
                       requirement: TlsRequirement) -> bool:
        """:meth:`_still_allowed`, asked once per claim for all idle lanes of a domain."""
        key = (host, requirement)
        answer = destination.rechecks.get(key)
        if answer is None:
            answer = destination.rechecks[key] = asyncio.ensure_future(
                self._still_allowed(destination.domain, host, requirement))
        return await asyncio.shield(answer)

    async def _still_allowed(self, domain: str, host: str,
                             requirement: TlsRequirement) -> bool:
        """Would a new lane connect to ``host`` with the same TLS requirement now?

        Asked by an idle lane before it sends what a later claim brought: MX,
        MTA-STS and DANE answers come from caches honouring their lifetimes.
        """
        try:
            hosts = await self._route(domain)
            policy = await self._tls.domain(domain)
            if host not in (mx.host for mx in policy.usable_hosts(hosts)):
                return False
            return await self._tls.requirement(policy, host) == requirement
        except (_RouteFailed, DaneUnavailable, DnsError):
            return False

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

    async def _send_all(self, connection: Connection, destination: _Destination,
                        hand: Batch, requirement: TlsRequirement) -> Failure | None:
        """Send the line's messages over one connection until it is empty (and stays
        empty for ``connection_idle_seconds`` while the worker runs); a Failure when
        the connection breaks (the messages in hand go back to the head of the line).
        """
        line = destination.pending
        sent_here = 0
        while True:
            if self._stopping:
                return None  # stop() hands the line's rows back (the hand's too)
            if not line and not hand:
                if not self._keep_connections or not connection.usable:
                    return None
                if not await destination.wait_for_work(self.config.connection_idle_seconds):
                    return None
                if self._stopping:
                    return None
                if not connection.usable or not await self._recheck(
                        destination, connection.host, requirement):
                    # Closed by the remote meanwhile, or the domain's MX or TLS policy
                    # changed while we waited: a fresh lane takes over.
                    return None
                continue
            if not hand:
                hand.append(line.popleft())
            message, entries = hand[0]
            data = await message.signed(self.queue, self._signer)
            # The next message's MAIL, RCPT and DATA ride behind this one (RFC 2920
            # 3.1): taken from the line now, it is this connection's next message.
            then = None
            if len(hand) == 1 and line and connection.pipelining:
                then = line[0][0].envelope(line[0][1])
                if then is not None:
                    hand.append(line.popleft())
            if len(hand) > 1:
                hand[1][0].prepare(self.queue, self._signer)
            elif line:
                line[0][0].prepare(self.queue, self._signer)
            try:
                result = await connection.send(message.mail_from,
                                               [e.recipient for e in entries], data, then)
            except ConnectionLost as exc:
                log.info("event=outbound_connection_lost host=%s reason=%r",
                         connection.host, exc.reason)
                line.extendleft(reversed(hand))
                hand.clear()
                if sent_here:
                    return None  # a reused connection timed out at the remote: reconnect
                return Failure("4.4.2", f"451 4.4.2 {exc.reason}", False, connection.host)
            sent_here += 1
            await self._record(message, entries, result)
            hand.pop(0)

    async def _record(self, message: _Message, entries: list[QueueEntry],
                      result: MessageResult) -> None:
        replies = {r.recipient: r.reply for r in result.recipients}
        sent = [e.id for e in entries if replies[e.recipient].ok]
        self._note_sent(sent)
        self._count("sent", len(sent))
        if sent:
            log.info("event=outbound_sent ids=%s host=%s %s", ",".join(map(str, sent)),
                     result.host, result.tls.log_fields())
        failed = [(e, Failure(replies[e.recipient].enhanced, replies[e.recipient].diagnostic,
                              replies[e.recipient].permanent, result.host))
                  for e in entries if not replies[e.recipient].ok]
        if failed:
            await self._fail(message, failed)

    # --- outcomes ------------------------------------------------------------------------
    def _count(self, result: str, recipients: int) -> None:
        if recipients and self.on_result is not None:
            self.on_result(result, recipients)

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
            self._count("deferred", 1)
            log.info("event=outbound_deferred id=%d attempts=%d retry_at=%s reason=%r",
                     entry.id, entry.attempts, retry_at.isoformat(), failure.diagnostic)
            if schedule.should_warn(entry.created_at, now, entry.delay_warned_at is not None):
                warned_ids.append(entry.id)
                warn.append(DsnRecipient(entry.recipient, DELAYED, failure.status,
                                         failure.diagnostic, failure.remote_mta, now,
                                         schedule.give_up_at(entry.created_at)))
        if warn:
            # Recorded first, as for bounces: a crash in between loses the warning
            # rather than sending it again after the restart.
            await self.queue.mark_warned(warned_ids, now)
            if message.mail_from:
                await self._send_dsn(message, warn)
        if give_up:
            await self._bounce(message, give_up)

    async def _bounce(self, message: _Message, failed: list[tuple[QueueEntry, Failure]]) -> None:
        """The rows are marked ``bounced`` before the notice goes out: a crash in
        between leaves a bounced row without its DSN, never a row that a restarted
        worker claims again and bounces (and notifies) a second time."""
        ids = [e.id for e, _ in failed]
        error = "; ".join(dict.fromkeys(f.diagnostic for _, f in failed))
        await self.queue.mark_bounced(ids, error)
        self._forget(ids)
        if not message.mail_from:
            # RFC 5321 4.5.5 / RFC 3464 2: never a DSN about a DSN.
            log.warning("event=bounce_dropped reason=null_sender ids=%s error=%r",
                        ",".join(map(str, ids)), error)
        else:
            now = self._clock()
            await self._send_dsn(message, [
                DsnRecipient(e.recipient, FAILED, f.status, f.diagnostic, f.remote_mta, now)
                for e, f in failed])
        self._count("bounced", len(ids))
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

    def _note_sent(self, ids: list[int]) -> None:
        """Rows with a remote 250 are marked ``sent`` by one writer, in shared commits.

        The window for a duplicate after a crash is this commit's wait, a few
        milliseconds; the rows stay in flight (never claimed again) until it is done.
        """
        if not ids:
            return
        self._unsaved_sent.extend(ids)
        if self._saving is None or self._saving.done():
            self._saving = asyncio.ensure_future(self._save_sent())

    async def _save_sent(self) -> None:
        while self._unsaved_sent:
            ids, self._unsaved_sent = self._unsaved_sent, []
            try:
                await self.queue.mark_sent(ids)
            except Exception:
                # They stay 'delivering' until their lease runs out: sent again then.
                log.exception("event=outbound_mark_sent_failed ids=%s", ",".join(map(str, ids)))
            self._forget(ids)

    async def _sent_saved(self) -> None:
        while self._saving is not None and not self._saving.done():
            await asyncio.shield(self._saving)

    def _forget(self, ids: list[int]) -> None:
        for entry_id in ids:
            self._in_flight.pop(entry_id, None)


def _log_testing_failure(policy: DomainTls, connection: Connection) -> None:
    """RFC 8461 5: in mode testing, a failed check is reported, the mail still goes."""
    if policy.checked and not policy.enforced and not connection.tls.verified:
        log.warning("event=mta_sts_testing_failure domain=%s host=%s reason=tls_unverified %s",
                    policy.domain, connection.host, connection.tls.log_fields())
