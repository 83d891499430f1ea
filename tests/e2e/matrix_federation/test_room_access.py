"""What a partner server may read of a room over federation (Server-Server API
"Retrieving events", "Backfilling and retrieving missing events"): only a server
with a joined member sees the room's state and history. A server that was never
in the room, and one whose users all left, get 403 and no events; unknown rooms and
events are 404, never a 500. Signed requests of school B's real federation client."""

from __future__ import annotations

from typing import Any

import pytest
from nio import AsyncClient, RoomCreateResponse, RoomSendResponse

from federation.matrix.client import FederationRequestError
from messenger.storage import dag
from tests.e2e.matrix_federation.conftest import ChatSchool
from tests.e2e.matrix_federation.test_rooms import invited_and_joined, login, until

V1 = "/_matrix/federation/v1"


async def latest(a: ChatSchool, room_id: str) -> str:
    async with a.school.db.read() as session:
        extremities = await dag.forward_extremities(session, room_id)
    return max(extremities, key=lambda e: extremities[e])


def reads(room_id: str, event_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every read of room history a server can ask for: (method, path, body/query)."""
    return [
        ("GET", f"{V1}/backfill/{room_id}", {"v": event_id, "limit": "50"}),
        ("GET", f"{V1}/state/{room_id}", {"event_id": event_id}),
        ("GET", f"{V1}/state_ids/{room_id}", {"event_id": event_id}),
        ("GET", f"{V1}/event_auth/{room_id}/{event_id}", {}),
        ("GET", f"{V1}/event/{event_id}", {}),
        ("POST", f"{V1}/get_missing_events/{room_id}",
         {"earliest_events": [], "latest_events": [event_id], "limit": 20}),
    ]


async def ask(b: ChatSchool, method: str, path: str, values: dict[str, Any]) -> Any:
    if method == "GET":
        return await b.listener.client.request(method, "a.test", path, query=values)
    return await b.listener.client.request(method, "a.test", path, content=values)


async def assert_refused(b: ChatSchool, room_id: str, event_id: str, status: int,
                         secret: str | None = None) -> None:
    for method, path, values in reads(room_id, event_id):
        with pytest.raises(FederationRequestError) as refused:
            answer = await ask(b, method, path, values)
            assert secret is None or secret not in str(answer), (path, "leaked")
        assert refused.value.status == status, (path, refused.value.status, refused.value.body)
        assert secret is None or secret not in str(refused.value.body)


async def test_a_server_never_in_the_room_reads_nothing(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    anna = await login(a, "anna", clients)
    created = await anna.room_create(name="Nur A")
    assert isinstance(created, RoomCreateResponse), created
    sent = await anna.room_send(created.room_id, "m.room.message",
                                {"msgtype": "m.text", "body": "nur für A"})
    assert isinstance(sent, RoomSendResponse), sent
    await assert_refused(b, created.room_id, sent.event_id, 403, "nur für A")
    # Unknown rooms and events: 404, not a 500.
    await assert_refused(b, "!unbekannt:a.test", "$unbekannt", 404)


async def test_a_server_whose_users_left_reads_nothing_said_after(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    anna, ben, room_id = await invited_and_joined(a, b, clients)
    # While Ben is in the room, B may read its history.
    answer = await ask(b, "GET", f"{V1}/backfill/{room_id}",
                       {"v": await latest(a, room_id), "limit": "5"})
    assert answer["pdus"]
    await ben.room_leave(room_id)
    await until(anna, lambda c: b.user("ben") not in c.rooms[room_id].users)
    sent = await anna.room_send(room_id, "m.room.message",
                                {"msgtype": "m.text", "body": "nach Bens Abschied"})
    assert isinstance(sent, RoomSendResponse), sent
    await assert_refused(b, room_id, sent.event_id, 403, "nach Bens Abschied")


async def _said_before_and_after_ben(a: ChatSchool, b: ChatSchool, clients: list[AsyncClient],
                                     visibility: str) -> tuple[str, str, str]:
    """A room of Anna's with ``visibility``: one message before Ben (of B) is
    invited and joins, one after. Returns (room, event before, event after)."""
    anna = await login(a, "anna", clients)
    ben = await login(b, "ben", clients)
    created = await anna.room_create(name="Sichtbarkeit")
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    put = await anna.room_put_state(room_id, "m.room.history_visibility",
                                    {"history_visibility": visibility})
    assert not hasattr(put, "status_code"), put
    before = await anna.room_send(room_id, "m.room.message",
                                  {"msgtype": "m.text", "body": "vor Bens Beitritt"})
    assert isinstance(before, RoomSendResponse), before
    await anna.room_invite(room_id, b.user("ben"))
    await until(ben, lambda c: room_id in c.invited_rooms)
    await ben.join(room_id)
    await until(anna, lambda c: room_id in c.rooms and b.user("ben") in c.rooms[room_id].users)
    after = await anna.room_send(room_id, "m.room.message",
                                 {"msgtype": "m.text", "body": "nach Bens Beitritt"})
    assert isinstance(after, RoomSendResponse), after
    return room_id, before.event_id, after.event_id


async def _what_b_reads(a: ChatSchool, b: ChatSchool, room_id: str, before: str,
                        after: str) -> list[str]:
    """B's answers to backfill, get_missing_events and event, as text."""
    backfill = await ask(b, "GET", f"{V1}/backfill/{room_id}",
                         {"v": await latest(a, room_id), "limit": "50"})
    missing = await ask(b, "POST", f"{V1}/get_missing_events/{room_id}",
                        {"earliest_events": [], "latest_events": [await latest(a, room_id)],
                         "limit": 20})
    single = await ask(b, "GET", f"{V1}/event/{before}", {})
    later = await ask(b, "GET", f"{V1}/event/{after}", {})
    # Every answer carries the events (redacted or not): the DAG stays whole.
    assert any(p.get("type") == "m.room.message" for p in backfill["pdus"])
    assert len(single["pdus"]) == 1 and single["pdus"][0]["type"] == "m.room.message"
    return [str(backfill["pdus"]), str(missing["events"]), str(single["pdus"]),
            str(later["pdus"])]


async def test_joined_visibility_hides_what_was_said_before_the_servers_user_joined(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    room_id, before, after = await _said_before_and_after_ben(a, b, clients, "joined")
    backfill, missing, single, later = await _what_b_reads(a, b, room_id, before, after)
    for answer in (backfill, missing, single):
        assert "vor Bens Beitritt" not in answer, "history before the join leaked"
    # (get_missing_events answers what lies before latest_events, so not "after".)
    assert "nach Bens Beitritt" in backfill and "nach Bens Beitritt" in later
    # The history visibility setting itself survives redaction.
    assert "'history_visibility': 'joined'" in backfill


async def test_shared_visibility_shows_the_history_to_a_joined_server(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    room_id, before, after = await _said_before_and_after_ben(a, b, clients, "shared")
    backfill, missing, single, later = await _what_b_reads(a, b, room_id, before, after)
    for answer in (backfill, missing, single):
        assert "vor Bens Beitritt" in answer
    assert "nach Bens Beitritt" in backfill and "nach Bens Beitritt" in later
