"""The durable outbound queue (storage layer): claim, finish, inspect.

Rows are written by the delivery transaction (one per message and remote
recipient, ``state='queued'``).  Life of a row::

    queued --claim--> delivering --remote 250--> sent
                        |   \\--5xx / give up--> bounced
                        \\--4xx, no connection--> queued (next_attempt_at later)

While a row is ``delivering``, ``next_attempt_at`` is its *lease*: the time
after which another claim may take it again (the worker died without
finishing).  The worker also hands back every ``delivering`` row when it
starts (one worker per school database; a killed process leaves them).  So
delivery is at-least-once; the window for a duplicate is between the remote
250 and :meth:`OutboundQueue.mark_sent`, one short commit.

Claiming is one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
LOCKED) RETURNING`` on PostgreSQL (concurrent claimers skip each other's
rows); SQLite has no lock clause and is safe through its single writer
engine (``BEGIN IMMEDIATE``).

The columns are addressed through a lightweight table clause: the mail
store owns the ``outbound_queue`` model; ``delay_warned_at`` comes from the
``outq_0001`` migration of this package.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    LargeBinary,
    String,
    Text,
    column,
    delete,
    func,
    select,
    table,
    update,
)

from directory.db import Database, affected_rows
from directory.schema import UtcDateTime
from mailserver.store.raw_sql import Dialect, Fetch, Steps, run_transaction

QUEUED, DELIVERING, SENT, BOUNCED = "queued", "delivering", "sent", "bounced"

queue = table(
    "outbound_queue",
    column("id", Integer), column("mail_from", String), column("recipient", String),
    column("blob_id", String), column("created_at", UtcDateTime()),
    column("next_attempt_at", UtcDateTime()), column("attempts", Integer),
    column("last_error", Text), column("state", String),
    column("delay_warned_at", UtcDateTime()),
)
blobs = table("message_blobs", column("id", String), column("data", LargeBinary))

_COLUMNS = (queue.c.id, queue.c.mail_from, queue.c.recipient, queue.c.blob_id,
            queue.c.created_at, queue.c.next_attempt_at, queue.c.attempts,
            queue.c.last_error, queue.c.state, queue.c.delay_warned_at)


@dataclass(frozen=True)
class QueueEntry:
    """One (message, remote recipient) row."""

    id: int
    mail_from: str
    recipient: str
    blob_id: str
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    attempts: int
    last_error: str | None
    state: str
    delay_warned_at: dt.datetime | None

    @property
    def domain(self) -> str:
        return self.recipient.rpartition("@")[2].lower()

    @property
    def message_key(self) -> tuple[str, str, dt.datetime]:
        """Rows of one submission: same body, same sender, same commit time."""
        return (self.blob_id, self.mail_from, self.created_at)


_RAW_COLUMNS = ", ".join(c.name for c in _COLUMNS)
_DATES = frozenset(i for i, c in enumerate(_COLUMNS)
                   if c.name in ("created_at", "next_attempt_at", "delay_warned_at"))


def _utc(value: object) -> dt.datetime | None:
    """A UtcDateTime value as the driver gives it (SQLite: text) -> aware UTC."""
    if value is None:
        return None
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _raw_entry(row: Sequence[Any]) -> QueueEntry:
    """A queue row read past SQLAlchemy (the columns of ``_COLUMNS``, in order)."""
    values: list[Any] = [_utc(v) if i in _DATES else v for i, v in enumerate(row)]
    return QueueEntry(*values)


def _entry(row: Sequence[Any]) -> QueueEntry:
    """A queue row (the columns of ``_COLUMNS``, in the fields' order)."""
    return QueueEntry(*row)


class OutboundQueue:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, now: dt.datetime, lease: dt.timedelta,
                    limit: int) -> list[QueueEntry]:
        """Take up to ``limit`` due rows (queued, or delivering with an expired lease)."""
        entries, _ = await self.claim_with_bodies(now, lease, limit, 0)
        return entries

    async def claim_with_bodies(self, now: dt.datetime, lease: dt.timedelta, limit: int,
                                max_body_size: int,
                                ) -> tuple[list[QueueEntry], dict[str, bytes]]:
        """:meth:`claim`, and the claimed rows' bodies of at most ``max_body_size``
        bytes, in one transaction: the worker's claim every busy poll, so in one hop
        to the database (raw_sql.run_transaction) instead of a session's several.
        Larger bodies (attachments) are read by :meth:`body` when their turn comes."""

        def steps(d: Dialect) -> Steps[tuple[list[QueueEntry], dict[str, bytes]]]:
            lock = "" if d.sqlite else " FOR UPDATE SKIP LOCKED"
            rows = yield Fetch(
                f"UPDATE outbound_queue SET state = ?, next_attempt_at = ?, "
                f"attempts = attempts + 1 WHERE id IN (SELECT id FROM outbound_queue "
                f"WHERE state IN (?, ?) AND next_attempt_at <= ? "
                f"ORDER BY next_attempt_at, id LIMIT ?{lock}) RETURNING {_RAW_COLUMNS}",
                [DELIVERING, d.date(now + lease), QUEUED, DELIVERING, d.date(now), limit])
            entries = sorted((_raw_entry(r) for r in rows), key=lambda e: e.id)
            blob_ids = sorted({e.blob_id for e in entries})
            if not blob_ids or max_body_size <= 0:
                return entries, {}
            where, parameters = d.where_in(blob_ids)
            found = yield Fetch(f"SELECT id, data FROM message_blobs WHERE id {where} "
                                f"AND length(data) <= ?", [*parameters, max_body_size])
            return entries, {blob_id: bytes(data) for blob_id, data in found}

        return await run_transaction(self.db, steps)

    async def recover(self, now: dt.datetime) -> int:
        """Hand back rows a killed worker left in ``delivering``: due at once."""
        async with self.db.write() as session:
            result = await session.execute(
                update(queue).where(queue.c.state == DELIVERING)
                .values(state=QUEUED, next_attempt_at=now))
        return affected_rows(result)

    async def body(self, blob_id: str) -> bytes:
        async with self.db.read() as session:
            data = await session.scalar(select(blobs.c.data).where(blobs.c.id == blob_id))
        if data is None:
            raise LookupError(f"no body {blob_id}")
        return bytes(data)

    async def _set(self, ids: Sequence[int], *, only_delivering: bool = True,
                   **values: object) -> int:
        if not ids:
            return 0
        where: list[ColumnElement[bool]] = [queue.c.id.in_(list(ids))]
        if only_delivering:  # a row deleted or retried by an admin meanwhile stays as is
            where.append(queue.c.state == DELIVERING)
        async with self.db.write() as session:
            result = await session.execute(update(queue).where(*where).values(**values))
        return affected_rows(result)

    async def mark_sent(self, ids: Sequence[int]) -> int:
        """Rows with a remote 250 (still ``delivering``) become ``sent``: the worker's
        most frequent write, so one hop to the database for the whole transaction
        (raw_sql.run_transaction) instead of SQLAlchemy's session (four on SQLite)."""
        if not ids:
            return 0

        def steps(dialect: Dialect) -> Steps[int]:
            where, parameters = dialect.where_in(list(ids))
            rows = yield Fetch(f"UPDATE outbound_queue SET state = ?, last_error = NULL "
                               f"WHERE id {where} AND state = ? RETURNING id",
                               [SENT, *parameters, DELIVERING])
            return len(rows)

        return await run_transaction(self.db, steps)

    async def mark_bounced(self, ids: Sequence[int], error: str) -> int:
        return await self._set(ids, state=BOUNCED, last_error=error)

    async def reschedule(self, ids: Sequence[int], next_attempt_at: dt.datetime,
                         error: str) -> int:
        return await self._set(ids, state=QUEUED, next_attempt_at=next_attempt_at,
                               last_error=error)

    async def release(self, ids: Sequence[int], now: dt.datetime) -> int:
        """Unfinished rows back to the queue (the worker stops), due at once."""
        return await self._set(ids, state=QUEUED, next_attempt_at=now)

    async def mark_warned(self, ids: Sequence[int], now: dt.datetime) -> int:
        return await self._set(ids, only_delivering=False, delay_warned_at=now)

    async def next_due(self) -> dt.datetime | None:
        """The earliest next_attempt_at among waiting rows (leases included)."""
        async with self.db.read() as session:
            return await session.scalar(
                select(func.min(queue.c.next_attempt_at))
                .where(queue.c.state.in_([QUEUED, DELIVERING])))

    async def purge_finished(self, before: dt.datetime) -> int:
        """Forget sent and bounced rows older than ``before`` (their bodies become garbage)."""
        async with self.db.write() as session:
            result = await session.execute(
                delete(queue).where(queue.c.state.in_([SENT, BOUNCED]),
                                    queue.c.created_at < before))
        return affected_rows(result)

    # --- administration (schulhof queue ...) ----------------------------------------------
    async def entries(self, states: Sequence[str] = (QUEUED, DELIVERING),
                      limit: int = 1000) -> list[QueueEntry]:
        async with self.db.read() as session:
            rows = (await session.execute(
                select(*_COLUMNS).where(queue.c.state.in_(list(states)))
                .order_by(queue.c.id).limit(limit))).all()
        return [_entry(r) for r in rows]

    async def get(self, entry_id: int) -> QueueEntry | None:
        async with self.db.read() as session:
            row = (await session.execute(
                select(*_COLUMNS).where(queue.c.id == entry_id))).one_or_none()
        return _entry(row) if row is not None else None

    async def retry_now(self, entry_id: int, now: dt.datetime) -> bool:
        """A waiting row becomes due now; False if it is not waiting (in flight or done)."""
        async with self.db.write() as session:
            result = await session.execute(
                update(queue).where(queue.c.id == entry_id, queue.c.state == QUEUED)
                .values(next_attempt_at=now))
        return affected_rows(result) > 0

    async def delete(self, entry_id: int) -> bool:
        """Remove a row that is not in flight; False if there is none or it is in flight."""
        async with self.db.write() as session:
            result = await session.execute(
                delete(queue).where(queue.c.id == entry_id, queue.c.state != DELIVERING))
        return affected_rows(result) > 0
