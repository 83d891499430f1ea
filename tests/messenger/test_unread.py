"""Unread counts (messenger.unread) against a real database and a model: random
walks of messages (main timeline and threads, some mentioning the reader) and
read receipts (unthreaded, threaded, m.read and m.read.private, concurrent
sends batched) and prunings of read notifications, after every step the counts
held in memory, the counts loaded afresh from the database and the model agree
(SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from conf.app import School
from messenger.identity import Requester
from messenger.notifications import Notifications
from messenger.rooms.presets import CreateRoomRequest
from messenger.server import MatrixServer
from messenger.unread import Counts, RoomUnread, UnreadCounts
from tests.support.matrix_in_process import new_requester

DOMAIN = "schule.test"


async def device(school: School, server: MatrixServer, login: str) -> Requester:
    """A new teacher whose display name is the login, title-cased (mentions use it)."""
    return await new_requester(school, server, login, display_name=login.title())


@dataclass
class Sent:
    event_id: str
    position: int
    thread: str
    highlight: bool


class Model:
    """What the spec says is unread: notifications no receipt of the reader reaches."""

    def __init__(self) -> None:
        self.events: list[Sent] = []
        self.receipts: dict[tuple[str, str], int] = {}  # (type, thread or "") -> position

    def unread(self, sent: Sent) -> bool:
        return sent.position > max([p for (_t, thread), p in self.receipts.items()
                                    if thread in ("", sent.thread)], default=0)

    def counts(self) -> dict[str, Counts]:
        out: dict[str, list[int]] = {}
        for sent in self.events:
            reach = max([p for (_t, thread), p in self.receipts.items()
                         if thread in ("", sent.thread)], default=0)
            if sent.position > reach:
                c = out.setdefault(sent.thread, [0, 0])
                c[0] += 1
                c[1] += int(sent.highlight)
        return {t: Counts(n, h) for t, (n, h) in out.items()}


def as_counts(rooms: Mapping[str, RoomUnread], room_id: str) -> dict[str, Counts]:
    room = rooms.get(room_id)
    if room is None:
        return {}
    return {t: Counts(n, h) for t, (n, h) in room.threads.items() if n}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_counts_in_memory_and_from_the_database_follow_the_model(
        school: School, server: MatrixServer, seed: int) -> None:
    rng = random.Random(seed)
    teacher = await device(school, server, "lehrer")
    anna = await device(school, server, "anna")
    ben = await device(school, server, "ben")
    room = await server.rooms.create_room(teacher, CreateRoomRequest(
        invite=(anna.user_id, ben.user_id)))
    await server.rooms.join(anna, room)
    await server.rooms.join(ben, room)
    model = Model()
    roots: list[str] = []
    fresh_reader = UnreadCounts(school.db, DOMAIN)
    await server.unread.load(anna.user_id, [room])
    for step in range(40):
        action = rng.random()
        if action < 0.55:
            burst = rng.randint(1, 3)
            contents, threads = [], []
            for n in range(burst):
                mention = rng.random() < 0.3
                body = f"Anna, schau mal {step}.{n}" if mention else f"Nachricht {step}.{n}"
                content: dict[str, object] = {"msgtype": "m.text", "body": body}
                thread = "main"
                if roots and rng.random() < 0.4:
                    thread = rng.choice(roots)
                    content["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread}
                contents.append((content, mention))
                threads.append(thread)
            sender = rng.choice([teacher, ben])
            # Concurrent sends go through the writer's batches.
            ids = await asyncio.gather(*(server.rooms.send(sender, room, "m.room.message", c,
                                                           txn_id=f"s{step}.{n}")
                                         for n, (c, _m) in enumerate(contents)))
            for event_id, (_c, mention), thread in zip(ids, contents, threads, strict=True):
                position = await _position(server, event_id)
                model.events.append(Sent(event_id, position, thread, mention))
                if thread == "main" and rng.random() < 0.5:
                    roots.append(event_id)
        elif action < 0.65:
            # Anna's own message notifies nobody of hers.
            await server.rooms.send(anna, room, "m.room.message",
                                    {"msgtype": "m.text", "body": "ich"}, txn_id=f"a{step}")
        elif model.events:
            target = rng.choice(model.events)
            receipt_type = rng.choice(["m.read", "m.read.private"])
            thread = rng.choice(["", target.thread])
            await server.receipts.put(room, anna.user_id, receipt_type, thread,
                                      target.event_id)
            model.receipts[(receipt_type, thread)] = target.position
        if rng.random() < 0.2:
            # Pruning with every read notification past its time: the counts stay.
            await _prune_everything_read(school)
            listed = await Notifications(school.db).page(anna.user_id, before=None,
                                                         limit=1000, only_highlight=False)
            assert not [n for n in listed.notifications if n.read], (step, seed)
            model.events = [e for e in model.events if model.unread(e)]
        expected = model.counts()
        in_memory = as_counts(await server.unread.load(anna.user_id, [room]), room)
        fresh_reader.reset()
        from_database = as_counts(await fresh_reader.load(anna.user_id, [room]), room)
        assert in_memory == expected, (step, seed)
        assert from_database == expected, (step, seed)


async def _prune_everything_read(school: School) -> None:
    far = Notifications(school.db, clock=lambda: time.time() + 40 * 24 * 3600)
    await far.prune()


async def test_pruning_keeps_recent_read_notifications(school: School,
                                                       server: MatrixServer) -> None:
    teacher = await device(school, server, "lehrer")
    anna = await device(school, server, "anna")
    room = await server.rooms.create_room(teacher, CreateRoomRequest(invite=(anna.user_id,)))
    await server.rooms.join(anna, room)
    plain = await server.rooms.send(teacher, room, "m.room.message",
                                    {"msgtype": "m.text", "body": "Hallo"}, txn_id="1")
    mention = await server.rooms.send(teacher, room, "m.room.message",
                                      {"msgtype": "m.text", "body": "Anna?"}, txn_id="2")
    unread = await server.rooms.send(teacher, room, "m.room.message",
                                     {"msgtype": "m.text", "body": "Noch was"}, txn_id="3")
    await server.receipts.put(room, anna.user_id, "m.read", "", mention)

    async def listed() -> list[tuple[str, bool]]:
        page = await Notifications(school.db).page(anna.user_id, before=None, limit=10,
                                                   only_highlight=False)
        return [(n.event.event_id, n.read) for n in page.notifications]

    assert await Notifications(school.db).prune() == 0  # read, but only just
    invite = (await listed())[-1][0]  # her invite notified her too
    assert await listed() == [(unread, False), (mention, True), (plain, True), (invite, True)]
    in_two_days = Notifications(school.db, clock=lambda: time.time() + 2 * 24 * 3600)
    assert await in_two_days.prune() == 2  # the read plain ones; the read highlight stays
    assert await listed() == [(unread, False), (mention, True)]
    await _prune_everything_read(school)
    assert await listed() == [(unread, False)]
    fresh = UnreadCounts(school.db, DOMAIN)
    assert as_counts(await fresh.load(anna.user_id, [room]), room) == {"main": Counts(1, 0)}


async def _position(server: MatrixServer, event_id: str) -> int:
    from messenger.storage import events as store

    async with server.sync.db.read() as session:
        event = await store.get_event(session, event_id)
    assert event is not None
    return event.stream_ordering


async def test_pruning_forgets_the_notifications_of_who_left(school: School,
                                                             server: MatrixServer) -> None:
    teacher = await device(school, server, "lehrer")
    anna, ben = await device(school, server, "anna"), await device(school, server, "ben")
    room = await server.rooms.create_room(teacher, CreateRoomRequest(
        invite=(anna.user_id, ben.user_id)))
    await server.rooms.join(anna, room)
    await server.rooms.join(ben, room)
    unread = await server.rooms.send(teacher, room, "m.room.message",
                                     {"msgtype": "m.text", "body": "Hallo"}, txn_id="1")
    await server.rooms.leave(anna, room)

    async def listed(user_id: str) -> list[str]:
        page = await Notifications(school.db).page(user_id, before=None, limit=10,
                                                   only_highlight=False)
        return [n.event.event_id for n in page.notifications]

    assert unread in await listed(anna.user_id)
    assert await Notifications(school.db).prune() == 0  # only just
    in_two_days = Notifications(school.db, clock=lambda: time.time() + 2 * 24 * 3600)
    await in_two_days.prune()
    assert await listed(anna.user_id) == []  # she never reads them: they go
    assert unread in await listed(ben.user_id)  # his stay unread, they are his counts
