"""Sends the outbox to other servers (Server-Server API, "Transactions"): per
destination one transaction at a time, in queue order, with exponential
backoff after a failure, so a server that was down gets everything it missed
once it is back (``PUT /_matrix/federation/v1/send/{txnId}``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

from federation.matrix.client import FederationClient, FederationRequestError
from federation.matrix.outbox import Batch, Outbox

log = logging.getLogger("schulhof.federation.matrix")

FIRST_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 24 * 3600.0
POLL_SECONDS = 30.0  # a look at the queue even without a wake-up (backoffs ending)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def backoff_after(failures: int, first: float = FIRST_BACKOFF_SECONDS) -> dt.timedelta:
    return dt.timedelta(seconds=min(first * 2 ** max(failures - 1, 0), MAX_BACKOFF_SECONDS))


class TransactionSender:
    def __init__(self, outbox: Outbox, client: FederationClient, *,
                 first_backoff: float = FIRST_BACKOFF_SECONDS,
                 clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self.outbox = outbox
        self._client = client
        self._first_backoff = first_backoff
        self._clock = clock
        self._wake = asyncio.Event()
        self._busy: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._workers: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Something was queued: look at the queue now."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="matrix-federation-sender")

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
                due, next_retry = await self.outbox.destinations_due(self._clock())
                if next_retry is not None:  # wake up when a backoff ends
                    pause = min(pause, max((next_retry - self._clock()).total_seconds(), 0.01))
                for destination in due:
                    if destination not in self._busy:
                        self._busy.add(destination)
                        worker = asyncio.create_task(self._drain(destination))
                        self._workers.add(worker)
                        worker.add_done_callback(self._workers.discard)
            except Exception:
                log.exception("event=federation_sender_pass_failed")
            try:
                await asyncio.wait_for(self._wake.wait(), pause)
            except TimeoutError:
                pass

    async def _drain(self, destination: str) -> None:
        """Send batches to ``destination`` until its queue is empty or a send fails."""
        try:
            while (batch := await self.outbox.next_batch(destination)) is not None:
                if not await self.send(batch):
                    self.wake()  # the loop then sleeps until this backoff ends
                    return
        finally:
            self._busy.discard(destination)

    async def send(self, batch: Batch) -> bool:
        started = time.monotonic()
        body = {"origin": self._client.origin,
                "origin_server_ts": int(self._clock().timestamp() * 1000),
                "pdus": list(batch.pdus), "edus": list(batch.edus)}
        try:
            await self._client.request("PUT", batch.destination,
                                       f"/_matrix/federation/v1/send/{batch.txn_id}",
                                       content=body)
        except FederationRequestError as exc:
            failures = await self.outbox.failed(
                batch.destination, str(exc), self._clock(),
                lambda n: backoff_after(n, self._first_backoff))
            log.info("event=federation_send_failed destination=%s txn=%s failures=%d "
                     "reason=%r", batch.destination, batch.txn_id, failures, str(exc))
            return False
        await self.outbox.delivered(batch, self._clock())
        log.debug("event=federation_sent destination=%s txn=%s pdus=%d edus=%d ms=%.1f",
                  batch.destination, batch.txn_id, len(batch.pdus), len(batch.edus),
                  (time.monotonic() - started) * 1000)
        return True
