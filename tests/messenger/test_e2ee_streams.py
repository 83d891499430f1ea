"""To-device messages and device-list changes against a real database: delivery
once per device, acknowledgement by the next token, wildcard devices, and
positions that never go backwards after deletion (SQLite and PostgreSQL)."""

from __future__ import annotations

from conf.app import School
from messenger.identity import Requester
from messenger.rooms.presets import CreateRoomRequest
from messenger.server import MatrixServer
from messenger.sync.builder import SyncRequest
from messenger.sync.filters import SyncFilter
from messenger.sync.tokens import SyncToken
from tests.support.matrix_in_process import another_device, new_requester


async def sync(server: MatrixServer, who: Requester, since: str | None = None) -> dict:
    return await server.sync.sync(who, SyncRequest(
        SyncToken.parse(since) if since else None, 0, False, SyncFilter()))


async def test_to_device_delivered_once_and_acknowledged(school: School,
                                                         server: MatrixServer) -> None:
    alice = await new_requester(school, server, "alice")
    bob_phone = await new_requester(school, server, "bob")
    bob_laptop = await another_device(server, "bob")
    phone0 = await sync(server, bob_phone)
    laptop0 = await sync(server, bob_laptop)
    sent = await server.e2ee.send(alice.user_id, alice.device_id, "t1", "m.room_key_request", {
        bob_phone.user_id: {"*": {"n": 1}}, "@nobody:schule.test": {"X": {"n": 0}}})
    assert sent == 2  # both of bob's devices; unknown users are dropped
    assert await server.e2ee.send(alice.user_id, alice.device_id, "t1", "x", {
        bob_phone.user_id: {"*": {"n": 1}}}) == 0  # the same txn id again: nothing new
    await server.e2ee.send(alice.user_id, alice.device_id, "t2", "m.dummy", {
        bob_phone.user_id: {bob_phone.device_id: {"n": 2}}})

    phone1 = await sync(server, bob_phone, phone0["next_batch"])
    assert [(e["type"], e["sender"], e["content"]) for e in phone1["to_device"]["events"]] == [
        ("m.room_key_request", alice.user_id, {"n": 1}), ("m.dummy", alice.user_id, {"n": 2})]
    laptop1 = await sync(server, bob_laptop, laptop0["next_batch"])
    assert [e["content"] for e in laptop1["to_device"]["events"]] == [{"n": 1}]
    # The next token acknowledges: nothing again, and positions never go back.
    phone2 = await sync(server, bob_phone, phone1["next_batch"])
    assert phone2["to_device"]["events"] == []
    again = await sync(server, bob_phone, phone1["next_batch"])
    assert again["to_device"]["events"] == []
    await server.e2ee.send(alice.user_id, alice.device_id, "t3", "m.dummy", {
        bob_phone.user_id: {bob_phone.device_id: {"n": 3}}})
    phone3 = await sync(server, bob_phone, phone2["next_batch"])
    assert [e["content"] for e in phone3["to_device"]["events"]] == [{"n": 3}]
    assert SyncToken.parse(phone3["next_batch"]).to_device > \
        SyncToken.parse(phone2["next_batch"]).to_device


async def test_device_list_changes_reach_room_mates_only(school: School,
                                                         server: MatrixServer) -> None:
    alice = await new_requester(school, server, "alice")
    bob = await new_requester(school, server, "bob")
    carol = await new_requester(school, server, "carol")
    room_id = await server.rooms.create_room(alice, CreateRoomRequest(invite=(bob.user_id,)))
    await server.rooms.join(bob, room_id)
    tokens = {who.user_id: (await sync(server, who))["next_batch"] for who in (alice, bob, carol)}
    await server.e2ee.device_list_changed(bob.user_id)
    seen = {who.user_id: (await sync(server, who, tokens[who.user_id]))["device_lists"]["changed"]
            for who in (alice, bob, carol)}
    assert seen == {alice.user_id: [bob.user_id], bob.user_id: [bob.user_id],
                    carol.user_id: []}
