"""Transactions other servers sent us, by (origin, txn id): a transaction sent
again (the sender never saw our answer) gets the same answer and is not
processed twice (Server-Server API, "Transactions")."""

from __future__ import annotations

import json
from typing import Any

from directory.db import Database
from federation.schema import FederationReceivedTxnRow


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
