"""The durable per-destination queue of PDUs and EDUs (storage and bookkeeping for
``federation.matrix.sender``), and what ``schulhof federation status`` shows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from federation.schema import FederationDestinationRow, FederationOutboxRow

# Spec limits of one transaction (Server-Server API, "Transactions").
MAX_PDUS_PER_TXN = 50
MAX_EDUS_PER_TXN = 100


@dataclass(frozen=True)
class Batch:
    """The oldest queued items of one destination, at most one transaction's worth."""

    destination: str
    ids: tuple[int, ...]
    pdus: tuple[Mapping[str, Any], ...]
    edus: tuple[Mapping[str, Any], ...]
    first_queued_us: int = 0  # when the first row was queued (microseconds)

    @property
    def txn_id(self) -> str:
        # Stable for the same rows: a retry after a lost answer reuses the id, and
        # the receiver answers it from its record instead of processing it again.
        # The queue time is part of it because SQLite hands a deleted row's id out
        # again (no AUTOINCREMENT): rows sent later under a reused id would
        # otherwise get the old answer and be lost.
        return f"{self.ids[0]}-{self.ids[-1]}-{len(self.ids)}-{self.first_queued_us}"


@dataclass(frozen=True)
class Schedule:
    due: list[str]  # destinations with queued items and no backoff
    next_retry: dt.datetime | None  # when the next backoff of a queued destination ends
    waiting: frozenset[str]  # destinations in a backoff (queued items or not)


@dataclass(frozen=True)
class DestinationStatus:
    destination: str
    queued: int
    oldest_queued_at: dt.datetime | None
    failures: int
    retry_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_error: str


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def enqueue(self, destinations: Iterable[str], *,
                      pdus: Sequence[Mapping[str, Any]] = (),
                      edus: Sequence[Mapping[str, Any]] = ()) -> None:
        """Queue the same PDUs and EDUs for each destination, in one commit."""
        rows = [FederationOutboxRow(destination=d, kind=kind, body=json.dumps(item))
                for d in sorted(set(destinations))
                for kind, items in (("pdu", pdus), ("edu", edus)) for item in items]
        if not rows:
            return
        async with self.db.write() as session:
            session.add_all(rows)

    @staticmethod
    def add_in(session: AsyncSession, destinations: Iterable[str], *,
               pdus: Sequence[Mapping[str, Any]] = (),
               edus: Sequence[Mapping[str, Any]] = ()) -> None:
        """Queue inside the caller's transaction: the items commit with what made
        them (a room event and its delivery are one commit)."""
        session.add_all([FederationOutboxRow(destination=d, kind=kind, body=json.dumps(item))
                         for d in sorted(set(destinations))
                         for kind, items in (("pdu", pdus), ("edu", edus))
                         for item in items])

    async def destinations_due(self, now: dt.datetime) -> tuple[list[str], dt.datetime | None]:
        """Destinations with queued items whose backoff has passed, and when the
        next backoff of a destination with queued items ends."""
        schedule = await self.schedule(now)
        return schedule.due, schedule.next_retry

    async def schedule(self, now: dt.datetime) -> Schedule:
        """Which destinations are due and which wait out a backoff."""
        async with self.db.read() as session:
            queued = set(await session.scalars(
                select(FederationOutboxRow.destination).distinct()))
            waiting = {d: at for d, at in await session.execute(
                select(FederationDestinationRow.destination, FederationDestinationRow.retry_at)
                .where(FederationDestinationRow.retry_at > now)) if at is not None}
        next_retry = min((at for d, at in waiting.items() if d in queued), default=None)
        return Schedule(sorted(queued - set(waiting)), next_retry, frozenset(waiting))

    async def end_backoff(self, destination: str) -> bool:
        """The destination is up again (it contacted us): its queue is due now and a
        later failure starts the backoff afresh.  False if it was not backing off."""
        async with self.db.write() as session:
            result = await session.execute(
                update(FederationDestinationRow)
                .where(FederationDestinationRow.destination == destination,
                       FederationDestinationRow.retry_at.is_not(None))
                .values(retry_at=None, failures=0))
            return bool(getattr(result, "rowcount", 0))

    async def next_batch(self, destination: str, after: int | None = None) -> Batch | None:
        """The oldest queued items of ``destination``; ``after``: those queued after
        row ``after`` (the sender reads the next batch while the one before it is in
        flight, its rows still queued)."""
        query = select(FederationOutboxRow).where(FederationOutboxRow.destination == destination)
        if after is not None:
            query = query.where(FederationOutboxRow.id > after)
        async with self.db.read() as session:
            rows = list(await session.scalars(
                query.order_by(FederationOutboxRow.id)
                .limit(MAX_PDUS_PER_TXN + MAX_EDUS_PER_TXN)))
        ids: list[int] = []
        first_queued_us = 0
        pdus: list[Mapping[str, Any]] = []
        edus: list[Mapping[str, Any]] = []
        for row in rows:
            target = pdus if row.kind == "pdu" else edus
            if len(target) >= (MAX_PDUS_PER_TXN if row.kind == "pdu" else MAX_EDUS_PER_TXN):
                break  # keep the order: later rows wait for the next transaction
            target.append(json.loads(row.body))
            if not ids and row.queued_at is not None:
                first_queued_us = int(row.queued_at.timestamp() * 1_000_000)
            ids.append(row.id)
        if not ids:
            return None
        return Batch(destination, tuple(ids), tuple(pdus), tuple(edus), first_queued_us)

    async def delivered(self, batch: Batch, now: dt.datetime) -> None:
        async with self.db.write() as session:
            await session.execute(delete(FederationOutboxRow)
                                  .where(FederationOutboxRow.id.in_(batch.ids)))
            row = await session.get(FederationDestinationRow, batch.destination)
            if row is None:
                row = FederationDestinationRow(destination=batch.destination)
                session.add(row)
            row.failures, row.retry_at, row.last_success_at, row.last_error = 0, None, now, ""

    async def failed(self, destination: str, error: str, now: dt.datetime,
                     backoff: Callable[[int], dt.timedelta]) -> int:
        """Record a failure; the destination waits ``backoff(failures so far)``; returns
        the failure count."""
        async with self.db.write() as session:
            row = await session.get(FederationDestinationRow, destination)
            if row is None:
                row = FederationDestinationRow(destination=destination, failures=0,
                                               last_error="")
                session.add(row)
            row.failures = (row.failures or 0) + 1
            row.retry_at = now + backoff(row.failures)
            row.last_error = error[:500]
            return row.failures

    async def status(self) -> list[DestinationStatus]:
        async with self.db.read() as session:
            queued = {d: (n, oldest) for d, n, oldest in await session.execute(
                select(FederationOutboxRow.destination, func.count(),
                       func.min(FederationOutboxRow.queued_at))
                .group_by(FederationOutboxRow.destination))}
            known = {r.destination: r for r in await session.scalars(
                select(FederationDestinationRow))}
        out = []
        for destination in sorted(set(queued) | set(known)):
            count, oldest = queued.get(destination, (0, None))
            row = known.get(destination)
            out.append(DestinationStatus(
                destination, count, oldest, row.failures if row else 0,
                row.retry_at if row else None, row.last_success_at if row else None,
                row.last_error if row else ""))
        return out
