"""The room DAG kept by the writer: forward extremities, prev_events, depth and
state groups (Server-Server API "PDUs"), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conf.app import School
from messenger.events.room_versions import V10
from messenger.rooms.errors import RoomNotFound
from messenger.rooms.heads import MAX_PREV_EVENTS, RoomHead, next_depth
from messenger.rooms.presets import CreateRoomRequest
from messenger.server import MatrixServer
from messenger.storage import dag
from messenger.storage import events as store
from messenger.storage.dag_tables import ForwardExtremityRow
from messenger.storage.events import StoredEvent
from tests.support.matrix_in_process import new_requester
from tests.support.properties import examples


async def test_one_extremity_moves_with_each_event(school: School, server: MatrixServer
                                                   ) -> None:
    teacher = await new_requester(school, server, "lehrer")
    room_id = await server.rooms.create_room(teacher, CreateRoomRequest(name="DAG"))
    await asyncio.gather(*(server.rooms.send(teacher, room_id, "m.room.message",
                                             {"msgtype": "m.text", "body": str(n)})
                           for n in range(8)))
    async with school.db.read() as session:
        extremities = await dag.forward_extremities(session, room_id)
        latest = await store.latest_event(session, room_id)
    assert latest is not None
    assert extremities == {latest.event_id: latest.pdu["depth"]}


async def test_a_fork_is_merged_by_the_next_event(school: School, server: MatrixServer
                                                  ) -> None:
    teacher = await new_requester(school, server, "lehrer")
    room_id = await server.rooms.create_room(teacher, CreateRoomRequest(name="Fork"))
    first = await server.rooms.send(teacher, room_id, "m.room.message",
                                    {"msgtype": "m.text", "body": "a"})
    await server.rooms.send(teacher, room_id, "m.room.message",
                            {"msgtype": "m.text", "body": "b"})
    async with school.db.write() as session:  # as if a remote event hung off ``first``
        old = await store.get_event(session, first)
        assert old is not None
        session.add(ForwardExtremityRow(room_id=room_id, event_id=first))
        tip = await store.latest_event(session, room_id)
        assert tip is not None
    server.rooms.writer._heads.forget(room_id)
    merged = await server.rooms.send(teacher, room_id, "m.room.message",
                                     {"msgtype": "m.text", "body": "merge"})
    async with school.db.read() as session:
        event = await store.get_event(session, merged)
        extremities = await dag.forward_extremities(session, room_id)
    assert event is not None
    assert set(event.pdu["prev_events"]) == {first, tip.event_id}
    assert event.pdu["depth"] == tip.pdu["depth"] + 1
    assert extremities == {merged: event.pdu["depth"]}


async def test_state_groups_round_trip_through_deltas(school: School, server: MatrixServer
                                                      ) -> None:
    teacher = await new_requester(school, server, "lehrer")
    room_id = await server.rooms.create_room(teacher, CreateRoomRequest(name="Groups"))
    expected: dict[tuple[str, str], str] = {("m.room.create", ""): "$c"}
    async with school.db.write() as session:
        group = await dag.new_state_group(session, room_id, expected)
        groups = [(group, dict(expected))]
        for n in range(dag.FULL_EVERY + 5):
            key = ("m.room.member", f"@u{n % 7}:x.test")
            expected[key] = f"$e{n}"
            group = await dag.new_state_group(session, room_id, expected, prev_group=group,
                                              delta={key: f"$e{n}"})
            groups.append((group, dict(expected)))
        for group, state in groups:
            assert await dag.state_of_group(session, group) == state


def _event(event_id: str, depth: int, prev: list[str]) -> StoredEvent:
    return StoredEvent(event_id, depth, "!r:x.test",
                       {"event_id": event_id, "type": "m.room.message", "sender": "@a:x.test",
                        "depth": depth, "prev_events": prev, "content": {}})


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.lists(st.integers(0, 30), max_size=4)),
                min_size=1, max_size=30))
def test_extremities_are_the_events_nothing_points_at(plan: list[tuple[int, list[int]]]
                                                      ) -> None:
    """Whatever order events arrive in (each naming earlier ones as prev_events), the
    head's extremities are exactly the events no later event names, prev_events
    never exceed the cap and depth is one more than the deepest prev event."""
    head = RoomHead(V10, {}, {})
    seen: list[StoredEvent] = []
    pointed: set[str] = set()
    for n, (depth_seed, prev_picks) in enumerate(plan):
        prev = sorted({seen[p % len(seen)].event_id for p in prev_picks}) if seen else []
        depths = {e.event_id: e.pdu["depth"] for e in seen}
        depth = max(next_depth({p: depths[p] for p in prev}), depth_seed)
        event = _event(f"$e{n}", depth, prev)
        head.advance(event)
        seen.append(event)
        pointed |= set(prev)
        assert set(head.extremities) == {e.event_id for e in seen} - pointed
        assert len(head.prev_events()) <= MAX_PREV_EVENTS
        chosen = head.prev_events()
        assert next_depth(chosen) == max(chosen.values()) + 1


class _NoNetwork:
    origin = "schule.test"

    async def request(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("no request to another server expected")


class _Queue:
    def __init__(self) -> None:
        self.queued: list[tuple[frozenset[str], str]] = []

    async def add(self, session: object, destinations: frozenset[str],
                  event: StoredEvent) -> None:
        self.queued.append((destinations, event.event_id))

    def wake(self) -> None:
        pass


async def _no_key(server: str, key_id: str, ts: int) -> str:
    raise KeyError(key_id)


async def test_with_federation_local_rooms_stay_local(school: School, server: MatrixServer
                                                      ) -> None:
    """A room of ours that everybody left is rejoined here, a room of a server the
    school does not federate with is not asked for, and nothing of a room with
    members on this server only is queued for other servers."""
    queue = _Queue()
    server.rooms.enable_federation(_NoNetwork(), _no_key, queue, lambda name: False)
    teacher = await new_requester(school, server, "lehrer")
    room_id = await server.rooms.create_room(teacher, CreateRoomRequest(
        name="Offen", preset="public_chat"))
    await server.rooms.send(teacher, room_id, "m.room.message", {"body": "x"})
    await server.rooms.leave(teacher, room_id)
    assert await server.rooms.join(teacher, room_id) == room_id
    with pytest.raises(RoomNotFound):
        await server.rooms.join(teacher, "!fremd:other.test")
    assert queue.queued == []


async def test_a_soft_failed_event_has_a_state_for_the_events_after_it(
        school: School, server: MatrixServer) -> None:
    """A soft-failed event stays out of the timeline, but a later event may name it
    as a prev event: its state is the state before it plus itself (S2S API "Soft
    failure"), also through a chain of them; any other outlier has none."""
    from messenger.rooms import dag_state

    teacher = await new_requester(school, server, "lehrer")
    room_id = await server.rooms.create_room(teacher, CreateRoomRequest(name="Weich"))
    async with school.db.write() as session:
        tip = await store.latest_event(session, room_id)
        assert tip is not None
        before = await dag_state.state_after(session, room_id, tip.event_id)
        assert before is not None
        base = {"room_id": room_id, "sender": "@fremd:b.test", "depth": 99,
                "auth_events": [], "origin_server_ts": 1}
        await dag.insert_outlier(session, {**base, "type": "m.room.topic", "state_key": "",
                                           "content": {"topic": "x"},
                                           "prev_events": [tip.event_id]}, "$topic", "soft_failed")
        await dag.insert_outlier(session, {**base, "type": "m.room.message",
                                           "content": {"body": "y"}, "prev_events": ["$topic"]},
                                 "$message", "soft_failed")
        await dag.insert_outlier(session, {**base, "type": "m.room.name", "state_key": "",
                                           "content": {"name": "z"},
                                           "prev_events": [tip.event_id]}, "$name", "rejected")
        topic = {**before, ("m.room.topic", ""): "$topic"}
        assert await dag_state.state_after(session, room_id, "$topic") == topic
        assert await dag_state.state_after(session, room_id, "$message") == topic
        assert await dag_state.state_after(session, room_id, "$name") is None
