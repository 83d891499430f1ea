"""What a partner server may read of a room over federation (Server-Server API
"Retrieving events", "Backfilling and retrieving missing events"): only a server
with a joined member sees the room's state and history. A server that was never
in the room, and one whose users all left, get 403 and no events; unknown rooms and
events are 404, never a 500. Signed requests of school B's real federation client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from nio import AsyncClient, RoomCreateResponse, RoomSendResponse

from federation.matrix.client import FederationRequestError
from messenger.storage import dag
from tests.e2e.matrix_federation.conftest import ChatSchool
from tests.e2e.matrix_federation.test_rooms import invited_and_joined, login, until

V1 = "/_matrix/federation/v1"


@pytest.fixture
async def clients() -> AsyncIterator[list[AsyncClient]]:
    made: list[AsyncClient] = []
    yield made
    for client in made:
        await client.close()


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
