"""A batch of message sends (messenger.rooms.batching -> RoomWriter.append_messages)
against a real database: what it stores, and how many statements its rows take
(SQLite and PostgreSQL; the statement count on SQLite, where each statement of
the writer is a wait for aiosqlite's thread and the GIL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select

from conf.app import School
from messenger.rooms.batching import MessageSend
from messenger.rooms.presets import CreateRoomRequest
from messenger.server import MatrixServer
from messenger.storage.dag_tables import ForwardExtremityRow
from messenger.storage.push_tables import PushActionRow
from messenger.storage.tables import EventRow
from tests.support.matrix_in_process import new_requester


@contextmanager
def writer_statements(connection: sqlite3.Connection) -> Iterator[list[str]]:
    """The statements the SQLite write connection runs meanwhile (an executemany's
    rows each count: each is a step of its own)."""
    seen: list[str] = []
    connection.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        connection.set_trace_callback(None)


async def test_a_batch_writes_its_rows_together(school: School, server: MatrixServer) -> None:
    teacher = await new_requester(school, server, "lehrer")
    readers = [await new_requester(school, server, f"leser{n}") for n in range(3)]
    rooms = []
    for n in range(3):
        room_id = await server.rooms.create_room(teacher, CreateRoomRequest(
            name=f"Raum {n}", invite=tuple(r.user_id for r in readers)))
        for reader in readers:
            await server.rooms.join(reader, room_id)
        rooms.append(room_id)
    sends = [MessageSend(teacher, rooms[n % 3], "m.room.message",
                         {"msgtype": "m.text", "body": f"Nachricht {n}"}, f"t{n}")
             for n in range(7)]
    writer = server.rooms.writer
    if school.db.is_sqlite:
        async with school.db.write_engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
        with writer_statements(raw._conn) as seen:  # type: ignore[union-attr]
            results = await writer.append_messages(sends)
        push_inserts = [s for s in seen if s.startswith("INSERT INTO matrix_push_actions")]
        extremity_moves = [s for s in seen if "matrix_forward_extremities" in s]
        event_inserts = [s for s in seen if s.startswith("INSERT INTO matrix_events")]
        txn_inserts = [s for s in seen if s.startswith("INSERT INTO matrix_txn_ids")]
        # One statement each for the whole batch, not one per message or per room.
        assert len(push_inserts) == 1, push_inserts
        assert len(extremity_moves) == 1, extremity_moves
        # The ORM's executemany of the events and their transaction ids: multi-row too.
        assert len(event_inserts) == 1 and len(txn_inserts) == 1, (event_inserts,
                                                                   txn_inserts)
    else:
        results = await writer.append_messages(sends)
    events = [r for r in results if not isinstance(r, Exception)]
    assert len(events) == 7, results
    async with school.db.read() as session:
        extremities = {(r, e) for r, e in await session.execute(
            select(ForwardExtremityRow.room_id, ForwardExtremityRow.event_id)
            .where(ForwardExtremityRow.room_id.in_(rooms)))}
        newest = {}
        for room_id, event_id in await session.execute(
                select(EventRow.room_id, EventRow.event_id).where(EventRow.room_id.in_(rooms))
                .order_by(EventRow.stream_ordering)):
            newest[room_id] = event_id
        actions = {(u, s, r, e, t, bool(h)) for u, s, r, e, t, h in await session.execute(
            select(PushActionRow.user_id, PushActionRow.stream_ordering, PushActionRow.room_id,
                   PushActionRow.event_id, PushActionRow.thread_id, PushActionRow.highlight)
            .where(PushActionRow.event_id.in_([e.event_id for e in events])))}
    assert extremities == set(newest.items())
    assert actions == {(reader.user_id, e.stream_ordering, e.room_id, e.event_id, "main", False)
                       for e in events for reader in readers}
    # The batch's extremities are where the next send builds on.
    after = await server.rooms.send(teacher, rooms[0], "m.room.message",
                                    {"msgtype": "m.text", "body": "danach"}, txn_id="t-after")
    async with school.db.read() as session:
        prev = (await session.get(EventRow, after)).json  # type: ignore[union-attr]
    assert newest[rooms[0]] in prev
