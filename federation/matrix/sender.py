"""Sends the outbox to other servers (Server-Server API, "Transactions"): per
destination one transaction at a time, in queue order, with exponential
backoff after a failure, so a server that was down gets everything it missed
once it is back (``PUT /_matrix/federation/v1/send/{txnId}``).

A destination that contacts us (any authenticated request) is up: its backoff
ends at once and its queue is sent (Synapse does the same).  So that the
servers holding events for us learn that we are back, the sender announces
itself after a start with an empty transaction to the servers we share rooms
with; their own backoff for us then ends and they send what we missed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from federation.matrix.client import FederationClient, FederationRequestError
from federation.matrix.outbox import Batch, Outbox

log = logging.getLogger("schulhof.federation.matrix")

FIRST_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 24 * 3600.0
POLL_SECONDS = 30.0  # a look at the queue even without a wake-up (backoffs ending)

# The servers to tell that we are up after a start (those we share rooms with).
Peers = Callable[[], Awaitable[Iterable[str]]]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def backoff_after(failures: int, first: float = FIRST_BACKOFF_SECONDS) -> dt.timedelta:
    return dt.timedelta(seconds=min(first * 2 ** max(failures - 1, 0), MAX_BACKOFF_SECONDS))


class TransactionSender:
    def __init__(self, outbox: Outbox, client: FederationClient, *,
                 first_backoff: float = FIRST_BACKOFF_SECONDS,
                 clock: Callable[[], dt.datetime] = _utcnow,
                 peers: Peers | None = None) -> None:
        self.outbox = outbox
        self._client = client
        self._first_backoff = first_backoff
        self._clock = clock
        self._peers = peers
        self._wake = asyncio.Event()
        self._busy: set[str] = set()
        # Busy destinations a pass found due: their drain reads the queue once more
        # before it ends (what was queued as it read the queue empty is not left
        # for the next poll).
        self._again: set[str] = set()
        self._waiting: set[str] = set()  # destinations in a backoff, as last seen
        self._scheduled = False  # a schedule was read: ``_waiting`` is known
        self._failed_at: dict[str, float] = {}  # monotonic time of each one's last failure
        self._task: asyncio.Task[None] | None = None
        self._workers: set[asyncio.Task[None]] = set()

    def wake(self, destinations: Iterable[str] | None = None) -> None:
        """Something was queued (for ``destinations``, if the caller knows): look at
        the queue now.  Destinations known not to be backing off are sent to at
        once, without a read of the schedule (each event sent wakes the sender)."""
        wanted = set(destinations) if destinations is not None else set()
        if wanted and self._scheduled and not wanted & self._waiting:
            for destination in sorted(wanted):
                self._start(destination)
            return
        self._wake.set()

    def _start(self, destination: str) -> None:
        """Drain ``destination``'s queue (once more, if a drain is under way)."""
        if destination in self._busy:
            self._again.add(destination)
        else:
            self._busy.add(destination)
            self._spawn(self._drain(destination))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="matrix-federation-sender")
        if self._peers is not None:
            self._spawn(self._announce(self._peers))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    def contacted_by(self, origin: str) -> None:
        """``origin`` sent us an authenticated request, so it is up: if it was backing
        off, end the backoff and send its queue now (called for every request, so
        it touches the database only for a destination seen backing off)."""
        if origin in self._waiting:
            self._waiting.discard(origin)
            self._spawn(self._end_backoff(origin))

    async def _end_backoff(self, origin: str) -> None:
        try:
            if await self.outbox.end_backoff(origin):
                log.info("event=federation_destination_up destination=%s", origin)
            self.wake()
        except Exception:
            log.exception("event=federation_end_backoff_failed destination=%s", origin)

    async def _announce(self, peers: Peers) -> None:
        """Tell the servers we share rooms with that we are up (an empty transaction:
        an authenticated request ends their backoff for us)."""
        try:
            names = sorted({p for p in await peers() if p != self._client.origin})
        except Exception:
            log.exception("event=federation_announce_failed")
            return
        txn_id = f"up-{int(self._clock().timestamp() * 1_000_000)}"

        async def hello(name: str) -> None:
            body = {"origin": self._client.origin,
                    "origin_server_ts": int(self._clock().timestamp() * 1000),
                    "pdus": [], "edus": []}
            try:
                await self._client.request("PUT", name,
                                           f"/_matrix/federation/v1/send/{txn_id}",
                                           content=body)
            except FederationRequestError as exc:
                log.info("event=federation_announce_failed destination=%s reason=%r",
                         name, str(exc))

        await asyncio.gather(*(hello(name) for name in names))

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._workers) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            pause = POLL_SECONDS
            try:
                read_at = time.monotonic()
                schedule = await self.outbox.schedule(self._clock())
                due, next_retry = schedule.due, schedule.next_retry
                self._waiting = set(schedule.waiting)
                if next_retry is not None:  # wake up when a backoff ends
                    pause = min(pause, max((next_retry - self._clock()).total_seconds(), 0.01))
                self._scheduled = True
                for destination in due:
                    # A send that failed while the schedule was read is not due: its
                    # backoff was not in what we read.
                    if self._failed_at.get(destination, -1.0) >= read_at:
                        continue
                    self._start(destination)
            except Exception:
                log.exception("event=federation_sender_pass_failed")
            try:
                await asyncio.wait_for(self._wake.wait(), pause)
            except TimeoutError:
                pass

    async def _drain(self, destination: str) -> None:
        """Send batches to ``destination`` until its queue is empty or a send fails.

        One transaction at a time, in queue order; around each one's round trip the
        queue work is done meanwhile: the next batch is read (the rows after the
        ones in flight) and the one before's "delivered" commits (awaited before the
        next answer is acted on, so a failure's backoff is never overwritten by it).
        Should that commit be lost, the rows are sent again under the same txn id and
        the receiver answers from its record."""
        delivering: asyncio.Future[None] | None = None
        try:
            batch = await self._read(destination)
            while batch is not None:
                self._again.discard(destination)
                following = asyncio.ensure_future(
                    self.outbox.next_batch(destination, after=batch.ids[-1]))
                try:
                    error = await self._transmit(batch)
                    if delivering is not None:
                        await delivering
                        delivering = None
                except BaseException:
                    await _cancelled(following)
                    raise
                if error is not None:
                    await _cancelled(following)
                    await self._failed(batch, error)
                    self.wake()  # the loop then sleeps until this backoff ends
                    return
                delivering = asyncio.ensure_future(self.outbox.delivered(batch, self._clock()))
                batch = await following
                if batch is None:
                    # Read from the start once the rows before are gone: SQLite may give
                    # a newly queued row the id of a deleted one.
                    await delivering
                    delivering = None
                    if destination in self._again:  # queued and found due as we read
                        batch = await self._read(destination)
        finally:
            if delivering is not None:
                await delivering
            self._busy.discard(destination)
            self._again.discard(destination)

    async def _read(self, destination: str) -> Batch | None:
        self._again.discard(destination)
        return await self.outbox.next_batch(destination)

    async def _transmit(self, batch: Batch) -> FederationRequestError | None:
        """``PUT /send/{txnId}`` of ``batch``; the error if it failed."""
        started = time.monotonic()
        body = {"origin": self._client.origin,
                "origin_server_ts": int(self._clock().timestamp() * 1000),
                "pdus": list(batch.pdus), "edus": list(batch.edus)}
        try:
            await self._client.request("PUT", batch.destination,
                                       f"/_matrix/federation/v1/send/{batch.txn_id}",
                                       content=body)
        except FederationRequestError as exc:
            return exc
        log.debug("event=federation_sent destination=%s txn=%s pdus=%d edus=%d ms=%.1f",
                  batch.destination, batch.txn_id, len(batch.pdus), len(batch.edus),
                  (time.monotonic() - started) * 1000)
        return None

    async def _failed(self, batch: Batch, exc: FederationRequestError) -> None:
        failures = await self.outbox.failed(
            batch.destination, str(exc), self._clock(),
            lambda n: backoff_after(n, self._first_backoff))
        self._waiting.add(batch.destination)
        self._failed_at[batch.destination] = time.monotonic()
        log.info("event=federation_send_failed destination=%s txn=%s failures=%d "
                 "reason=%r", batch.destination, batch.txn_id, failures, str(exc))


async def _cancelled(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait for it (its result, or error, is not wanted)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
