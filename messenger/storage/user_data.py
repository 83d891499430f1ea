"""Per-user data: filters, account data, receipts, E2EE device and one-time keys."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from messenger.events.canonical import canonical_json
from messenger.storage.stream_locks import lock_stream
from messenger.storage.tables import (
    AccountDataRow,
    DeviceRow,
    FilterRow,
    OneTimeKeyRow,
    ReceiptRow,
)


async def add_filter(session: AsyncSession, account_id: int, definition: Mapping[str, Any]) -> int:
    last = await session.scalar(select(func.max(FilterRow.filter_id))
                                .where(FilterRow.account_id == account_id))
    filter_id = (last or 0) + 1
    session.add(FilterRow(account_id=account_id, filter_id=filter_id,
                          json=canonical_json(definition).decode("utf-8")))
    await session.flush()
    return filter_id


async def get_filter(session: AsyncSession, account_id: int, filter_id: int) -> Any | None:
    row = await session.get(FilterRow, (account_id, filter_id))
    return json.loads(row.json) if row else None


async def max_account_data_stream(session: AsyncSession) -> int:
    return (await session.scalar(select(func.max(AccountDataRow.stream_id)))) or 0


async def put_account_data(session: AsyncSession, account_id: int, room_id: str,
                           data_type: str, content: Mapping[str, Any]) -> int:
    await lock_stream(session, "account_data")
    stream_id = await max_account_data_stream(session) + 1
    row = await session.get(AccountDataRow, (account_id, room_id, data_type))
    # Plain JSON, not canonical: account data is never signed, and clients put
    # floats in it (m.tag's "order" is a number between 0 and 1).
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                      allow_nan=False)
    if row is None:
        session.add(AccountDataRow(account_id=account_id, room_id=room_id, type=data_type,
                                   content=text, stream_id=stream_id))
    else:
        row.content, row.stream_id = text, stream_id
    await session.flush()
    return stream_id


async def get_account_data(session: AsyncSession, account_id: int, room_id: str,
                           data_type: str) -> Any | None:
    row = await session.get(AccountDataRow, (account_id, room_id, data_type))
    return json.loads(row.content) if row else None


async def account_data_since(session: AsyncSession, account_id: int, since: int,
                             upto: int) -> list[tuple[str, str, Any]]:
    """(room_id or "", type, content) changed in (since, upto]."""
    rows = await session.scalars(select(AccountDataRow).where(
        AccountDataRow.account_id == account_id, AccountDataRow.stream_id > since,
        AccountDataRow.stream_id <= upto).order_by(AccountDataRow.stream_id))
    return [(r.room_id, r.type, json.loads(r.content)) for r in rows]


async def put_receipt(session: AsyncSession, room_id: str, user_id: str, receipt_type: str,
                      thread_id: str, event_id: str, ts: int, stream_id: int = 0) -> None:
    await session.merge(ReceiptRow(room_id=room_id, user_id=user_id, receipt_type=receipt_type,
                                   thread_id=thread_id, event_id=event_id, ts=ts,
                                   stream_id=stream_id))


async def set_device_keys(session: AsyncSession, account_id: int, device_id: str,
                          keys: Mapping[str, Any]) -> None:
    row = await session.get(DeviceRow, (account_id, device_id))
    if row is not None:
        row.keys_json = canonical_json(keys).decode("utf-8")


async def device_keys(session: AsyncSession, account_id: int, device_id: str) -> Any | None:
    """The DeviceKeys a device published, or None."""
    row = await session.get(DeviceRow, (account_id, device_id))
    return json.loads(row.keys_json) if row is not None and row.keys_json else None


FALLBACK_PREFIX = "fallback/"  # fallback keys share the table, under this prefix


async def set_fallback_keys(session: AsyncSession, account_id: int, device_id: str,
                            keys: Mapping[str, Any]) -> None:
    """Replace the device's fallback key per algorithm (spec 11.12.5.3 fallback keys)."""
    for key_id, key in keys.items():
        algorithm = key_id.partition(":")[0]
        await session.execute(delete(OneTimeKeyRow).where(
            OneTimeKeyRow.account_id == account_id, OneTimeKeyRow.device_id == device_id,
            OneTimeKeyRow.key_id.like(f"{FALLBACK_PREFIX}{algorithm}:%")))
        session.add(OneTimeKeyRow(account_id=account_id, device_id=device_id,
                                  key_id=FALLBACK_PREFIX + key_id,
                                  json=canonical_json(key).decode()))
    await session.flush()


async def fallback_key_types(session: AsyncSession, account_id: int,
                             device_id: str) -> list[str]:
    rows = await session.scalars(select(OneTimeKeyRow.key_id).where(
        OneTimeKeyRow.account_id == account_id, OneTimeKeyRow.device_id == device_id,
        OneTimeKeyRow.key_id.like(f"{FALLBACK_PREFIX}%")))
    return sorted({k[len(FALLBACK_PREFIX):].partition(":")[0] for k in rows})


async def add_one_time_keys(session: AsyncSession, account_id: int, device_id: str,
                            keys: Mapping[str, Any]) -> None:
    for key_id, key in keys.items():
        await session.merge(OneTimeKeyRow(account_id=account_id, device_id=device_id,
                                          key_id=key_id, json=canonical_json(key).decode()))


async def one_time_key_counts(session: AsyncSession, account_id: int,
                              device_id: str) -> dict[str, int]:
    rows = await session.scalars(select(OneTimeKeyRow.key_id).where(
        OneTimeKeyRow.account_id == account_id, OneTimeKeyRow.device_id == device_id))
    counts: dict[str, int] = {}
    for key_id in rows:
        if key_id.startswith(FALLBACK_PREFIX):
            continue
        algorithm = key_id.partition(":")[0]
        counts[algorithm] = counts.get(algorithm, 0) + 1
    return counts


async def key_counts(session: AsyncSession, account_id: int,
                     device_id: str) -> tuple[dict[str, int], list[str]]:
    """One query for /sync: one-time key counts per algorithm, fallback key types."""
    rows = await session.scalars(select(OneTimeKeyRow.key_id).where(
        OneTimeKeyRow.account_id == account_id, OneTimeKeyRow.device_id == device_id))
    counts: dict[str, int] = {}
    fallback: set[str] = set()
    for key_id in rows:
        if key_id.startswith(FALLBACK_PREFIX):
            fallback.add(key_id[len(FALLBACK_PREFIX):].partition(":")[0])
        else:
            algorithm = key_id.partition(":")[0]
            counts[algorithm] = counts.get(algorithm, 0) + 1
    return counts, sorted(fallback)


async def devices_with_keys(session: AsyncSession, account_id: int) -> dict[str, Any]:
    rows = await session.scalars(select(DeviceRow).where(
        DeviceRow.account_id == account_id, DeviceRow.keys_json.is_not(None)))
    return {r.device_id: json.loads(r.keys_json) for r in rows if r.keys_json is not None}


async def claim_one_time_key(session: AsyncSession, account_id: int, device_id: str,
                             algorithm: str) -> tuple[str, Any] | None:
    row = await session.scalar(select(OneTimeKeyRow).where(
        OneTimeKeyRow.account_id == account_id, OneTimeKeyRow.device_id == device_id,
        OneTimeKeyRow.key_id.like(f"{algorithm}:%")).order_by(OneTimeKeyRow.key_id).limit(1))
    if row is None:
        # No one-time key left: the fallback key, which stays (it is reused).
        row = await session.scalar(select(OneTimeKeyRow).where(
            OneTimeKeyRow.account_id == account_id, OneTimeKeyRow.device_id == device_id,
            OneTimeKeyRow.key_id.like(f"{FALLBACK_PREFIX}{algorithm}:%")).limit(1))
        return (row.key_id[len(FALLBACK_PREFIX):], json.loads(row.json)) if row else None
    await session.execute(delete(OneTimeKeyRow).where(
        OneTimeKeyRow.account_id == account_id, OneTimeKeyRow.device_id == device_id,
        OneTimeKeyRow.key_id == row.key_id))
    return row.key_id, json.loads(row.json)
