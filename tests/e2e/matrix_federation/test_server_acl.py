"""Room server ACLs across two schools (Server-Server API "Server Access Control
Lists"): once a room at A denies b.test, A ignores B's PDUs and typing for that room
(each PDU answered with an error) and refuses B's requests about it with 403
``M_FORBIDDEN``; when the ACL lets B in again, B's messages arrive again.
matrix-nio clients at both schools; B's real federation client for raw requests."""

from __future__ import annotations

import asyncio

import pytest
from nio import (
    AsyncClient,
    RoomPutStateResponse,
    RoomReadMarkersResponse,
    RoomSendResponse,
    RoomTypingResponse,
)

from federation.matrix.client import FederationRequestError
from messenger.rooms import dag_state
from messenger.rooms.receiving import pdu_for_wire
from messenger.storage import dag
from messenger.storage.tables import ReceiptRow
from tests.e2e.matrix_federation.conftest import ChatSchool
from tests.e2e.matrix_federation.test_rooms import bodies, invited_and_joined, until

V1 = "/_matrix/federation/v1"


async def set_acl(client: AsyncClient, room_id: str, content: dict[str, object]) -> None:
    put = await client.room_put_state(room_id, "m.room.server_acl", content)
    assert isinstance(put, RoomPutStateResponse), put


async def test_a_denied_server_is_ignored_and_refused(chat_schools: dict[str, ChatSchool],
                                                      clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    anna, ben, room_id = await invited_and_joined(a, b, clients)
    await set_acl(anna, room_id, {"allow": ["*"], "deny": ["b.*"],
                                  "allow_ip_literals": False})
    async with a.school.db.read() as session:
        extremities = await dag.forward_extremities(session, room_id)
    latest = max(extremities, key=lambda e: extremities[e])

    # B's requests about the room: 403 with the reason.
    for method, path, values in [
            ("GET", f"{V1}/state_ids/{room_id}", {"event_id": latest}),
            ("GET", f"{V1}/backfill/{room_id}", {"v": latest, "limit": "5"}),
            ("GET", f"{V1}/make_join/{room_id}/@neu:b.test", {"ver": "10"})]:
        with pytest.raises(FederationRequestError) as refused:
            await b.listener.client.request(method, "a.test", path, query=values)
        assert refused.value.status == 403 and refused.value.errcode == "M_FORBIDDEN", path
        assert "server ACL" in str(refused.value.body.get("error")), refused.value.body

    # B's PDUs for the room: ignored, each with an error in A's answer.
    sent = await ben.room_send(room_id, "m.room.message",
                               {"msgtype": "m.text", "body": "gesperrt"})
    assert isinstance(sent, RoomSendResponse), sent
    answer = await b.listener.client.request(
        "PUT", "a.test", f"{V1}/send/acl-test-1",
        content={"origin": "b.test", "origin_server_ts": 0, "edus": [], "pdus": [
            await pdu_of(b, sent.event_id)]})
    assert "server ACL" in answer["pdus"][sent.event_id]["error"]
    # B's typing in the room: dropped.
    b.matrix.typing.set_typing(room_id, b.user("ben"), True, 20_000)
    await asyncio.sleep(2.0)
    assert "gesperrt" not in bodies(anna, room_id)
    await anna.sync(timeout=0)
    assert "gesperrt" not in bodies(anna, room_id)
    assert b.user("ben") not in a.matrix.typing.typing_in(room_id)
    # And A sends B nothing more of the room.
    sent = await anna.room_send(room_id, "m.room.message",
                                {"msgtype": "m.text", "body": "nicht für B"})
    assert isinstance(sent, RoomSendResponse), sent
    await asyncio.sleep(1.0)
    await ben.sync(timeout=1000)
    assert "nicht für B" not in bodies(ben, room_id)
    queued = {d.destination: d.queued for d in await a.listener.sender.outbox.status()}
    assert not queued.get("b.test")
    # Nor anna's typing and read receipt in it (B would take them: the ACL allows A).
    assert isinstance(await anna.room_typing(room_id, True, timeout=20_000), RoomTypingResponse)
    assert isinstance(await anna.room_read_markers(room_id, sent.event_id, sent.event_id),
                      RoomReadMarkersResponse)
    await asyncio.sleep(1.0)
    assert a.user("anna") not in b.matrix.typing.typing_in(room_id)
    async with b.school.db.read() as session:
        assert await session.get(ReceiptRow, (room_id, a.user("anna"), "m.read", "")) is None

    # Let B in again: its messages arrive.
    await set_acl(anna, room_id, {"allow": ["*"], "deny": [], "allow_ip_literals": False})
    sent = await ben.room_send(room_id, "m.room.message",
                               {"msgtype": "m.text", "body": "wieder da"})
    assert isinstance(sent, RoomSendResponse), sent
    await until(anna, lambda c: "wieder da" in bodies(c, room_id))


async def pdu_of(school: ChatSchool, event_id: str) -> dict[str, object]:
    async with school.school.db.read() as session:
        found = await dag_state.events_by_id(session, [event_id])
    return pdu_for_wire(found[event_id])
