"""To-device messages, device-list changes and the receipts stream (storage layer).

Stream ids are handed out as max + 1 by callers holding the owning service's
lock (as events are), so a sync token never skips a row that commits later.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from messenger.events.canonical import canonical_json
from messenger.storage.tables import (
    AccountDataRow,
    DeviceListChangeRow,
    DeviceRow,
    EventRow,
    MembershipRow,
    ReceiptRow,
    ToDeviceRow,
)


async def stream_maxima(session: AsyncSession) -> tuple[int, int, int, int, int]:
    """The last position of every stored stream in one query: events, account
    data, to-device, device lists, receipts (the order of ``SyncToken``)."""
    row = (await session.execute(select(
        select(func.max(EventRow.stream_ordering)).scalar_subquery(),
        select(func.max(AccountDataRow.stream_id)).scalar_subquery(),
        select(func.max(ToDeviceRow.stream_id)).scalar_subquery(),
        select(func.max(DeviceListChangeRow.stream_id)).scalar_subquery(),
        select(func.max(ReceiptRow.stream_id)).scalar_subquery()))).one()
    events, account_data, to_device, device_lists, receipts = (v or 0 for v in row)
    return events, account_data, to_device, device_lists, receipts


async def max_to_device(session: AsyncSession) -> int:
    return (await session.scalar(select(func.max(ToDeviceRow.stream_id)))) or 0


async def max_device_list(session: AsyncSession) -> int:
    return (await session.scalar(select(func.max(DeviceListChangeRow.stream_id)))) or 0


async def max_receipt(session: AsyncSession) -> int:
    return (await session.scalar(select(func.max(ReceiptRow.stream_id)))) or 0


async def device_ids(session: AsyncSession, account_id: int) -> list[str]:
    return list(await session.scalars(select(DeviceRow.device_id)
                                      .where(DeviceRow.account_id == account_id)))


async def add_to_device(session: AsyncSession, stream_id: int, account_id: int, device_id: str,
                        sender: str, event_type: str, content: Mapping[str, Any]) -> None:
    session.add(ToDeviceRow(stream_id=stream_id, account_id=account_id, device_id=device_id,
                            sender=sender, type=event_type,
                            content=canonical_json(content).decode("utf-8")))


async def to_device_for(session: AsyncSession, account_id: int, device_id: str, after: int,
                        upto: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
    rows = await session.scalars(select(ToDeviceRow).where(
        ToDeviceRow.account_id == account_id, ToDeviceRow.device_id == device_id,
        ToDeviceRow.stream_id > after, ToDeviceRow.stream_id <= upto)
        .order_by(ToDeviceRow.stream_id).limit(limit))
    return [(r.stream_id, {"type": r.type, "sender": r.sender, "content": json.loads(r.content)})
            for r in rows]


async def delete_to_device_upto(session: AsyncSession, account_id: int, device_id: str,
                                upto: int) -> None:
    # The newest row of all stays: stream ids are max + 1, and a max that went
    # down would hand out positions that clients' tokens are already past.
    newest = select(func.max(ToDeviceRow.stream_id)).scalar_subquery()
    await session.execute(delete(ToDeviceRow).where(
        ToDeviceRow.account_id == account_id, ToDeviceRow.device_id == device_id,
        ToDeviceRow.stream_id <= upto, ToDeviceRow.stream_id < newest))


async def add_device_list_change(session: AsyncSession, stream_id: int, user_id: str) -> None:
    session.add(DeviceListChangeRow(stream_id=stream_id, user_id=user_id))


async def users_sharing_a_room(session: AsyncSession, user_id: str) -> set[str]:
    mine = select(MembershipRow.room_id).where(MembershipRow.user_id == user_id,
                                               MembershipRow.membership == "join")
    rows = await session.scalars(select(MembershipRow.user_id).where(
        MembershipRow.room_id.in_(mine), MembershipRow.membership == "join").distinct())
    return set(rows)


async def room_mates(session: AsyncSession, user_id: str, among: Iterable[str]) -> set[str]:
    """Those of ``among`` who are joined to or invited into a room ``user_id`` is joined
    to or invited into (the people a client shares room keys with)."""
    users = list(among)
    if not users:
        return set()
    present = ("join", "invite")
    mine = select(MembershipRow.room_id).where(MembershipRow.user_id == user_id,
                                               MembershipRow.membership.in_(present))
    rows = await session.scalars(select(MembershipRow.user_id).where(
        MembershipRow.room_id.in_(mine), MembershipRow.membership.in_(present),
        MembershipRow.user_id.in_(users)).distinct())
    return set(rows)


async def changed_users(session: AsyncSession, after: int, upto: int,
                        among: Iterable[str]) -> set[str]:
    users = list(among)
    if not users or upto <= after:
        return set()
    rows = await session.scalars(select(DeviceListChangeRow.user_id).where(
        DeviceListChangeRow.stream_id > after, DeviceListChangeRow.stream_id <= upto,
        DeviceListChangeRow.user_id.in_(users)).distinct())
    return set(rows)


async def receipts_between(session: AsyncSession, room_ids: Iterable[str], after: int,
                           upto: int) -> dict[str, dict[str, Any]]:
    """room id -> the content of one m.receipt event with the receipts in (after, upto]."""
    ids = list(room_ids)
    if not ids or upto <= after:
        return {}
    rows = await session.scalars(select(ReceiptRow).where(
        ReceiptRow.room_id.in_(ids), ReceiptRow.stream_id > after,
        ReceiptRow.stream_id <= upto))
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        receipt: dict[str, Any] = {"ts": r.ts}
        if r.thread_id:
            receipt["thread_id"] = r.thread_id
        out.setdefault(r.room_id, {}).setdefault(r.event_id, {}).setdefault(
            r.receipt_type, {})[r.user_id] = receipt
    return out
