"""Serialising writers of the max + 1 streams across processes (issue 15).

Stream positions (event stream orderings, to-device, device-list, receipt and
account-data stream ids) are the stream's maximum plus one, read in the
writing transaction.  One process serialises its writers with asyncio locks;
several processes on one PostgreSQL database (``serve --workers N``, or
``schulhof rooms post`` beside the server) take a transaction-scoped advisory
lock per stream first, so two transactions never read the same maximum.
SQLite needs nothing: ``BEGIN IMMEDIATE`` already admits one writer at a time.
"""

from __future__ import annotations

import zlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

STREAMS = ("events", "to_device", "device_lists", "receipts", "account_data", "key_backup")
_KEYS = {name: 0x5C4F0000 + zlib.crc32(name.encode()) % 0xFFFF for name in STREAMS}


async def lock_stream(session: AsyncSession, stream: str) -> None:
    """Hold ``stream``'s writer lock until ``session``'s transaction ends (PostgreSQL)."""
    if (await session.connection()).dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                              {"key": _KEYS[stream]})
