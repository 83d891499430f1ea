"""Room aliases across schools (Client-Server API "Room aliases", Server-Server API
"Room aliases" ``GET /query/directory``): a pupil at school A resolves and joins
``#name:b.test`` with matrix-nio, A asking B over federation; aliases of servers
that are not partners are refused before any request; bad directory queries get
clear errors, never a 500."""

from __future__ import annotations

import pytest
from nio import (
    AsyncClient,
    JoinError,
    JoinResponse,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomResolveAliasError,
    RoomResolveAliasResponse,
    RoomSendResponse,
    RoomVisibility,
)

from federation.matrix.client import FederationRequestError
from tests.e2e.matrix_federation.conftest import ChatSchool
from tests.e2e.matrix_federation.test_rooms import bodies, login, record_messages, until

V1 = "/_matrix/federation/v1"


async def public_room_at_b(b: ChatSchool, clients: list[AsyncClient]
                           ) -> tuple[AsyncClient, str]:
    teacher = await login(b, "lehrerb", clients)
    record_messages(teacher)
    created = await teacher.room_create(name="Austausch", alias="austausch",
                                        visibility=RoomVisibility.public)
    assert isinstance(created, RoomCreateResponse), created
    return teacher, created.room_id


async def test_a_pupil_joins_a_room_of_the_partner_school_by_alias(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    teacher, room_id = await public_room_at_b(b, clients)
    anna = await login(a, "anna", clients)
    record_messages(anna)

    resolved = await anna.room_resolve_alias("#austausch:b.test")
    assert isinstance(resolved, RoomResolveAliasResponse), resolved
    assert resolved.room_id == room_id and resolved.servers == ["b.test"]

    joined = await anna.join("#austausch:b.test")
    assert isinstance(joined, JoinResponse), joined
    assert joined.room_id == room_id
    await until(anna, lambda c: room_id in c.rooms)
    assert anna.rooms[room_id].name == "Austausch"
    await until(teacher, lambda c: room_id in c.rooms
                and a.user("anna") in c.rooms[room_id].users)
    sent = await anna.room_send(room_id, "m.room.message",
                                {"msgtype": "m.text", "body": "Hallo aus A"})
    assert isinstance(sent, RoomSendResponse), sent
    await until(teacher, lambda c: "Hallo aus A" in bodies(c, room_id))
    sent = await teacher.room_send(room_id, "m.room.message",
                                   {"msgtype": "m.text", "body": "Willkommen"})
    assert isinstance(sent, RoomSendResponse), sent
    await until(anna, lambda c: "Willkommen" in bodies(c, room_id))

    # Now that A holds the room, B's directory names both schools, B first.
    answer = await a.listener.client.request("GET", "b.test", f"{V1}/query/directory",
                                             query={"room_alias": "#austausch:b.test"})
    assert answer == {"room_id": room_id, "servers": ["b.test", "a.test"]}
    # The canonical alias came over with the room's state.
    state = await anna.room_get_state_event(room_id, "m.room.canonical_alias")
    assert isinstance(state, RoomGetStateEventResponse), state
    assert state.content.get("alias") == "#austausch:b.test"


async def test_unknown_and_refused_aliases(chat_schools: dict[str, ChatSchool],
                                           clients: list[AsyncClient]) -> None:
    a, c = chat_schools["a"], chat_schools["c"]
    anna = await login(a, "anna", clients)
    unknown = await anna.room_resolve_alias("#gibtesnicht:b.test")
    assert isinstance(unknown, RoomResolveAliasError), unknown
    assert unknown.status_code == "M_NOT_FOUND"
    refused = await anna.join("#gibtesnicht:b.test")
    assert isinstance(refused, JoinError) and refused.status_code == "M_NOT_FOUND"

    # c.test is no partner of A: A refuses to ask, and says why.
    cem = await login(c, "lehrerc", clients)
    created = await cem.room_create(name="Fremd", alias="fremd",
                                    visibility=RoomVisibility.public)
    assert isinstance(created, RoomCreateResponse), created
    for result in (await anna.room_resolve_alias("#fremd:c.test"),
                   await anna.join("#fremd:c.test")):
        assert isinstance(result, RoomResolveAliasError | JoinError), result
        assert result.status_code == "M_FORBIDDEN" and "c.test" in result.message
    assert "c.test" not in {d.destination for d in await a.listener.sender.outbox.status()}
    # And B, whose partner c.test is not, refuses c.test's query.
    with pytest.raises(FederationRequestError) as forbidden:
        await c.listener.client.request("GET", "b.test", f"{V1}/query/directory",
                                        query={"room_alias": "#austausch:b.test"})
    assert forbidden.value.status == 403 and forbidden.value.errcode == "M_FORBIDDEN"


BAD_DIRECTORY_QUERIES: list[tuple[dict[str, str], int]] = [
    ({}, 400),                                   # no room_alias
    ({"room_alias": "austausch"}, 400),          # not an alias
    ({"room_alias": "#x:" + "b" * 300}, 400),    # too long
    ({"room_alias": "#austausch:a.test"}, 404),  # not B's alias
    ({"room_alias": "#nichts:b.test"}, 404),     # unknown
]


async def test_bad_directory_queries_are_refused_clearly(
        chat_schools: dict[str, ChatSchool]) -> None:
    # One pair of schools for all the queries (a set-up costs seconds).
    a = chat_schools["a"]
    for query, status in BAD_DIRECTORY_QUERIES:
        with pytest.raises(FederationRequestError) as refused:
            await a.listener.client.request("GET", "b.test", f"{V1}/query/directory",
                                            query=query)
        assert refused.value.status == status, (query, refused.value.body)
        assert refused.value.errcode in ("M_NOT_FOUND", "M_BAD_JSON", "M_INVALID_PARAM"), query
