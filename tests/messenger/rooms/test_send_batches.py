"""A batch of message sends (messenger.rooms.batching) in one transaction: every row
of every message is stored (event, relation, transaction id, push actions, the
rooms' forward extremities), and on SQLite the batch costs a fixed number of
hops to aiosqlite's thread, not some per message (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import aiosqlite
import pytest
from sqlalchemy import select

from conf.app import School
from directory.model import Role
from messenger.identity import Requester
from messenger.limits import MessengerLimits
from messenger.rooms.batching import MessageSend
from messenger.rooms.presets import CreateRoomRequest
from messenger.server import MatrixServer
from messenger.storage import dag
from messenger.storage import events as store
from messenger.storage.push_tables import PushActionRow
from messenger.storage.relations import relations_to

PASSWORD = "correct horse battery"
# BEGIN, the newest position, the known transaction ids, the live devices, the
# gathered rows, COMMIT (and the pool's few): however many messages and rooms.
MAX_HOPS = 10


@pytest.fixture
async def server(school: School) -> MatrixServer:
    return MatrixServer(db=school.db, directory=school.directory,
                        authenticator=school.authenticator, server_name="schule.test",
                        bind="127.0.0.1", port=0, limits=MessengerLimits(),
                        group_sync_interval=None)


async def device(school: School, server: MatrixServer, login: str) -> Requester:
    await school.directory.create_account(role=Role.TEACHER, login=login, password=PASSWORD)
    result = await server.sessions.login(login, PASSWORD, device_id=None, display_name=None,
                                         client_ip="127.0.0.1")
    return await server.sessions.requester(result.access_token)


async def test_a_batch_stores_every_row_in_few_hops(school: School, server: MatrixServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    anna, ben = await device(school, server, "anna"), await device(school, server, "ben")
    rooms = []
    for name in ("Eins", "Zwei"):
        room = await server.rooms.create_room(anna, CreateRoomRequest(
            name=name, invite=(ben.user_id,)))
        await server.rooms.join(ben, room)
        rooms.append(room)
    first = await server.rooms.send(anna, rooms[0], "m.room.message",
                                    {"msgtype": "m.text", "body": "davor"})
    sends = [
        MessageSend(anna, rooms[0], "m.room.message", {"msgtype": "m.text", "body": "a"}, "t1"),
        MessageSend(ben, rooms[0], "m.reaction", {"m.relates_to": {
            "rel_type": "m.annotation", "event_id": first, "key": "+1"}}, "t2"),
        MessageSend(ben, rooms[1], "m.room.message", {"msgtype": "m.text", "body": "b"}, "t3"),
        MessageSend(anna, rooms[1], "m.room.message", {"msgtype": "m.text", "body": "c"}, None),
        MessageSend(anna, rooms[0], "m.room.message", {"msgtype": "m.text", "body": "a"}, "t1"),
    ]
    hops = 0
    execute = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    results = await server.rooms.writer.append_messages(sends)
    monkeypatch.undo()
    if school.db.is_sqlite:
        assert hops <= MAX_HOPS, hops
    events = [r for r in results if not isinstance(r, Exception)]
    assert len(events) == 5
    assert events[4] == events[0]  # the same transaction id twice: one event
    async with school.db.read() as session:
        stored = await store.get_events(session, [e.event_id for e in events])
        assert {e.event_id: e.pdu["content"] for e in stored.values()} == {
            e.event_id: e.pdu["content"] for e in events}
        known = await store.events_of_txns(session, [
            (anna.account_id, anna.device_id, "t1"), (ben.account_id, ben.device_id, "t2"),
            (ben.account_id, ben.device_id, "t3")])
        assert set(known.values()) == {
            events[0].event_id, events[1].event_id, events[2].event_id}
        related = await relations_to(session, [first], None)
        assert [r.event_id for r in related] == [events[1].event_id]
        for room, latest in ((rooms[0], events[1]), (rooms[1], events[3])):
            assert await dag.forward_extremities(session, room) == {
                latest.event_id: latest.pdu["depth"]}
        actions = set((await session.execute(select(
            PushActionRow.user_id, PushActionRow.event_id)
            .where(PushActionRow.stream_ordering > events[0].stream_ordering - 1))).all())
    assert actions == {(ben.user_id, events[0].event_id), (anna.user_id, events[2].event_id),
                       (ben.user_id, events[3].event_id)}
    # The batch is where the next send goes on from (heads, positions).
    after = await server.rooms.send(ben, rooms[1], "m.room.message",
                                    {"msgtype": "m.text", "body": "danach"})
    async with school.db.read() as session:
        event = await store.get_event(session, after)
    assert event is not None and event.pdu["prev_events"] == [events[3].event_id]
