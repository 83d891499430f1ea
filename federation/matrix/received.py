"""Transactions other servers sent us, by (origin, txn id): a transaction sent
again (the sender never saw our answer) gets the same answer and is not
processed twice (Server-Server API, "Transactions")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from federation.schema import FederationReceivedTxnRow


@dataclass
class PendingRecord:
    """The record of a transaction being processed, for the handler that commits its
    PDUs to write in that same commit (one fsync instead of two): a transaction
    whose events are committed is then never processed twice, and one whose
    commit is lost is not recorded either.  ``written``: set by that handler once
    the commit is done; if it stays False, ``remember`` writes the record."""

    origin: str
    txn_id: str
    written: bool = False

    def write_in(self, session: AsyncSession, answer: dict[str, Any]) -> None:
        """Add the record to ``session``'s transaction (the caller sets ``written``
        after its commit).  An insert, not a merge: the caller found no record under
        the origin's lock; should another process have written one meanwhile, the
        commit fails and the caller's fallback runs."""
        session.add(FederationReceivedTxnRow(
            origin=self.origin, txn_id=self.txn_id, response=json.dumps(answer)))


class ReceivedTransactions:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def answer_of(self, origin: str, txn_id: str) -> dict[str, Any] | None:
        async with self.db.read() as session:
            row = await session.get(FederationReceivedTxnRow, (origin, txn_id))
            return None if row is None else json.loads(row.response)

    async def remember(self, origin: str, txn_id: str, answer: dict[str, Any]) -> None:
        async with self.db.write() as session:
            await session.merge(FederationReceivedTxnRow(
                origin=origin, txn_id=txn_id, response=json.dumps(answer)))
