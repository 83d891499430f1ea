"""Users' notifications and read receipts as unread counts (storage layer; spec:
Client-Server API 13.13 "Push Notifications", 11.6.2 "Receipts": an unthreaded
receipt reads everything up to its event, a threaded one only its thread).

Rows come from messenger.unread when an event is stored; the counts read here
are per room and thread, up to a stream position, so the in-memory counts
(messenger.unread) can add the events committed after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import and_, case, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from directory.schema import AccountRow
from messenger.storage.events import StoredEvent, _stored
from messenger.storage.push_tables import PushActionRow
from messenger.storage.tables import AccountDataRow, EventRow, MembershipRow, ReceiptRow

READ_RECEIPTS = ("m.read", "m.read.private")
UNTHREADED = ""  # how an unthreaded receipt's thread id is stored


@dataclass(frozen=True)
class Notified:
    """One user the push rules notify of an event."""

    user_id: str
    thread_id: str
    highlight: bool


# session.info key: rows ``add`` holds back until ``write_held`` (see ``hold``).
_HELD = "schulhof_push_action_rows"


def hold(session: AsyncSession) -> None:
    """From now on ``add`` keeps the rows of ``session``'s events back, and
    ``write_held`` (before the commit) writes them in one statement: a received
    transaction stores up to 50 events, and a send batch as many messages, which
    was an INSERT each."""
    session.info[_HELD] = []


_COLUMNS = ("user_id", "stream_ordering", "room_id", "event_id", "thread_id", "highlight")
_INSERT = f"INSERT INTO matrix_push_actions ({', '.join(_COLUMNS)}) VALUES "
_ROW = f"({', '.join('?' * len(_COLUMNS))})"
ROWS_PER_INSERT = 500  # 3,000 parameters: within SQLite's and asyncpg's limits


async def write_held(session: AsyncSession) -> None:
    """Write the rows ``add`` held back since ``hold`` and stop holding them.

    One multi-row INSERT per ``ROWS_PER_INSERT`` rows, each in one driver call
    (``Database.rows_in``): an executemany steps through the rows one by one,
    and on SQLite each step hands the GIL back and waits to take it again
    behind the busy event loop."""
    rows = session.info.pop(_HELD, None)
    for start in range(0, len(rows or ()), ROWS_PER_INSERT):
        chunk = rows[start:start + ROWS_PER_INSERT]
        await Database.rows_in(session, _INSERT + ", ".join([_ROW] * len(chunk)),
                               [row[c] for row in chunk for c in _COLUMNS])


async def add(session: AsyncSession, event: StoredEvent, notified: Iterable[Notified]) -> None:
    """The rows of one event, in the event's own transaction: one executemany of
    plain rows (no ORM objects: a message in a room of many members makes a row
    for each of them, and this runs on every send).  On the session's connection,
    so the writer's pending rows are not flushed early (one flush per batch)."""
    rows = [{"user_id": n.user_id, "stream_ordering": event.stream_ordering,
             "room_id": event.room_id, "event_id": event.event_id,
             "thread_id": n.thread_id, "highlight": n.highlight} for n in notified]
    held = session.info.get(_HELD)
    if held is not None:
        held.extend(rows)
    elif rows:
        await (await session.connection()).execute(insert(PushActionRow), rows)


async def push_rules_of(session: AsyncSession, logins: Iterable[str]) -> dict[str, object]:
    """login -> the stored ``m.push_rules`` of those accounts that have one."""
    wanted = list(logins)
    if not wanted:
        return {}
    rows = await session.execute(
        select(AccountRow.login, AccountDataRow.content)
        .join(AccountDataRow, AccountDataRow.account_id == AccountRow.id)
        .where(AccountRow.login.in_(wanted), AccountDataRow.room_id == "",
               AccountDataRow.type == "m.push_rules"))
    return {login: json.loads(content) for login, content in rows}


async def receipt_positions(session: AsyncSession, user_id: str,
                            room_ids: Iterable[str] | None = None,
                            ) -> dict[tuple[str, str], int]:
    """(room, thread or "") -> the newest position the user's read receipts reach."""
    query = (select(ReceiptRow.room_id, ReceiptRow.thread_id,
                    func.max(EventRow.stream_ordering))
             .join(EventRow, EventRow.event_id == ReceiptRow.event_id)
             .where(ReceiptRow.user_id == user_id,
                    ReceiptRow.receipt_type.in_(READ_RECEIPTS))
             .group_by(ReceiptRow.room_id, ReceiptRow.thread_id))
    if room_ids is not None:
        query = query.where(ReceiptRow.room_id.in_(list(room_ids)))
    return {(room, thread): position for room, thread, position in await session.execute(query)}


def is_read(positions: Mapping[tuple[str, str], int], room_id: str, thread_id: str,
            stream_ordering: int) -> bool:
    """Whether a receipt reaches the event: an unthreaded one, or its thread's."""
    return stream_ordering <= max(positions.get((room_id, UNTHREADED), 0),
                                  positions.get((room_id, thread_id), 0))


async def unread(session: AsyncSession, user_id: str, room_ids: Iterable[str], upto: int,
                 ) -> list[tuple[str, str, bool]]:
    """(room, thread, highlight) of each unread notification at positions <= upto.

    What came before the user's membership event (the join) is not unread for
    them: an invite they accepted, or a room's past when they join."""
    rooms = list(room_ids)
    if not rooms:
        return []
    positions = await receipt_positions(session, user_id, rooms)
    for room, joined_at in await session.execute(
            select(MembershipRow.room_id, MembershipRow.stream_ordering).where(
                MembershipRow.user_id == user_id, MembershipRow.room_id.in_(rooms))):
        # As an unthreaded receipt on the membership event.
        positions[(room, UNTHREADED)] = max(positions.get((room, UNTHREADED), 0), joined_at)
    # Per room, the rows past its unthreaded receipt; threaded receipts in Python.
    within = [and_(PushActionRow.room_id == room,
                   PushActionRow.stream_ordering > positions.get((room, UNTHREADED), 0))
              for room in rooms]
    out: list[tuple[str, str, bool]] = []
    for chunk in range(0, len(within), 200):
        rows = await session.execute(
            select(PushActionRow.room_id, PushActionRow.thread_id,
                   PushActionRow.stream_ordering, PushActionRow.highlight)
            .where(PushActionRow.user_id == user_id, PushActionRow.stream_ordering <= upto,
                   or_(*within[chunk:chunk + 200])))
        out.extend((room, thread, highlight) for room, thread, position, highlight in rows
                   if not is_read(positions, room, thread, position))
    return out


async def page(session: AsyncSession, user_id: str, *, before: int | None, limit: int,
               only_highlight: bool) -> list[tuple[StoredEvent, str, bool]]:
    """The user's notifications, newest first: (event, thread, highlight)."""
    query = (select(EventRow, PushActionRow.thread_id, PushActionRow.highlight)
             .join(EventRow, EventRow.stream_ordering == PushActionRow.stream_ordering)
             .where(PushActionRow.user_id == user_id))
    if before is not None:
        query = query.where(PushActionRow.stream_ordering < before)
    if only_highlight:
        query = query.where(PushActionRow.highlight.is_(True))
    rows = await session.execute(
        query.order_by(PushActionRow.stream_ordering.desc()).limit(limit))
    return [(_stored(row), thread, highlight) for row, thread, highlight in rows]


async def prune_read(session: AsyncSession, *, before_ms: int,
                     highlights_before_ms: int) -> int:
    """Delete the notifications a read receipt of their user reaches (unthreaded, or
    in their thread) whose event is older than ``before_ms`` (highlights:
    ``highlights_before_ms``); unread ones stay, they are the counts, unless their
    user is no longer in the room.  How many went."""
    read_upto = (select(func.max(EventRow.stream_ordering))
                 .join(ReceiptRow, ReceiptRow.event_id == EventRow.event_id)
                 .where(ReceiptRow.user_id == PushActionRow.user_id,
                        ReceiptRow.room_id == PushActionRow.room_id,
                        ReceiptRow.receipt_type.in_(READ_RECEIPTS),
                        or_(ReceiptRow.thread_id == UNTHREADED,
                            ReceiptRow.thread_id == PushActionRow.thread_id))
                 .correlate(PushActionRow).scalar_subquery())
    sent_at = (select(EventRow.origin_server_ts)
               .where(EventRow.stream_ordering == PushActionRow.stream_ordering)
               .correlate(PushActionRow).scalar_subquery())
    cutoff = case((PushActionRow.highlight, highlights_before_ms), else_=before_ms)
    connection = await session.connection()
    result = await connection.execute(
        delete(PushActionRow).where(PushActionRow.stream_ordering <= read_upto,
                                    func.coalesce(sent_at, 0) < cutoff))
    # Whoever left the room (or was kicked, banned, erased) never reads these: they
    # count nowhere (counts are of joined rooms) and go after the same time.
    still_there = (select(MembershipRow.room_id)
                   .where(MembershipRow.room_id == PushActionRow.room_id,
                          MembershipRow.user_id == PushActionRow.user_id,
                          MembershipRow.membership.in_(("join", "invite")))
                   .correlate(PushActionRow).exists())
    gone = await connection.execute(
        delete(PushActionRow).where(~still_there, func.coalesce(sent_at, 0) < cutoff))
    return (result.rowcount or 0) + (gone.rowcount or 0)
