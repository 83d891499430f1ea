"""EDUs between two schools over the real federation listeners (issue 13.4): typing,
read receipts, to-device messages and device-list changes of a user at A reach the
typing tracker, receipt store, to-device queue and device-list stream at B; EDUs
that speak for another server's users, for non-members, of the wrong shape or of a
to-device type outside the key traffic are dropped, and never fail the transaction.

The shared room: made at A, B's teacher invited and joined over federation.
"""

from __future__ import annotations

from typing import Any

from messenger.storage import device_messages, devices
from tests.e2e.matrix_federation.two_schools import Side, eventually, pair, shared_room

__all__ = ["pair"]  # the fixture, imported for pytest


async def test_typing_and_receipts_reach_the_other_school(pair: dict[str, Side]) -> None:
    a, b = pair["a"], pair["b"]
    room_id = await shared_room(a, b)
    a.server.typing.set_typing(room_id, "@lehrera:a.test", True, 20_000)

    async def typing_at_b() -> list[str]:
        return b.server.typing.typing_in(room_id)

    assert await eventually(typing_at_b) == ["@lehrera:a.test"]
    a.server.typing.set_typing(room_id, "@lehrera:a.test", False, 0)

    async def stopped_at_b() -> bool:
        return not b.server.typing.typing_in(room_id)

    assert await eventually(stopped_at_b)

    await a.server.receipts.put(room_id, "@lehrera:a.test", "m.read.private", "", "$secret")
    await a.server.receipts.put(room_id, "@lehrera:a.test", "m.read", "", "$gelesen")

    async def receipts_at_b() -> dict[str, Any]:
        async with b.school.db.read() as session:
            return await device_messages.receipts_between(session, [room_id], 0, 2 ** 62)

    receipts = await eventually(receipts_at_b)
    assert receipts[room_id] == {"$gelesen": {"m.read": {"@lehrera:a.test": {
        "ts": receipts[room_id]["$gelesen"]["m.read"]["@lehrera:a.test"]["ts"]}}}}


async def test_to_device_and_device_list_reach_the_other_school(
        pair: dict[str, Side]) -> None:
    a, b = pair["a"], pair["b"]
    room_id = await shared_room(a, b)
    assert room_id
    account_b = await b.school.directory.get_account("lehrerb")
    async with b.school.db.write() as session:
        await devices.ensure_device(session, account_b.id, "DEVB", "Tablet")
    # A room key for B's device, Olm-encrypted (opaque to the servers).
    content = {"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": "k",
               "ciphertext": {"x": {"type": 0, "body": "geheim"}}}
    queued_here = await a.server.e2ee.send("@lehrera:a.test", "DEVA", "txn1",
                                           "m.room.encrypted",
                                           {"@lehrerb:b.test": {"DEVB": content}})
    assert queued_here == 0  # nothing for A's own users

    async def at_b() -> list[tuple[int, dict[str, Any]]]:
        async with b.school.db.read() as session:
            return await device_messages.to_device_for(session, account_b.id, "DEVB", 0,
                                                       2 ** 62, 10)

    [(_, message)] = await eventually(at_b)
    assert message == {"type": "m.room.encrypted", "sender": "@lehrera:a.test",
                        "content": content}

    async with b.school.db.read() as session:
        before = await device_messages.max_device_list(session)
    account_a = await a.school.directory.get_account("lehrera")
    async with a.school.db.write() as session:
        await devices.ensure_device(session, account_a.id, "DEVA", "Laptop")
    await a.server.e2ee.device_list_changed("@lehrera:a.test")

    async def changed_at_b() -> set[str]:
        async with b.school.db.read() as session:
            return await device_messages.changed_users(session, before, 2 ** 62,
                                                       ["@lehrera:a.test"])

    assert await eventually(changed_at_b) == {"@lehrera:a.test"}


async def test_edus_that_may_not_speak_are_dropped(pair: dict[str, Side]) -> None:
    """B sends A EDUs for A's own user, for a non-member, a to-device type outside
    the key traffic and garbage: the transaction is answered, nothing is applied."""
    a, b = pair["a"], pair["b"]
    room_id = await shared_room(a, b)
    account_a = await a.school.directory.get_account("lehrera")
    async with a.school.db.write() as session:
        await devices.ensure_device(session, account_a.id, "DEVA", "Laptop")
    edus: list[Any] = [
        {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": "@lehrera:a.test",
                                             "typing": True}},
        {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": "@fremd:b.test",
                                             "typing": True}},
        {"edu_type": "m.typing", "content": {"room_id": 5, "user_id": None}},
        {"edu_type": "m.receipt", "content": {room_id: {"m.read": {
            "@lehrera:a.test": {"event_ids": ["$x"], "data": {"ts": 1}}}}}},
        {"edu_type": "m.receipt", "content": {room_id: {"m.read": {
            "@lehrerb:b.test": {"event_ids": "nicht-liste"}}}}},
        {"edu_type": "m.direct_to_device", "content": {
            "sender": "@lehrerb:b.test", "type": "m.custom.chat", "message_id": "m1",
            "messages": {"@lehrera:a.test": {"DEVA": {"body": "hallo"}}}}},
        {"edu_type": "m.direct_to_device", "content": {
            "sender": "@lehrera:a.test", "type": "m.room.encrypted", "message_id": "m2",
            "messages": {"@lehrera:a.test": {"DEVA": {"body": "gefälscht"}}}}},
        {"edu_type": "m.device_list_update", "content": {"user_id": "@lehrera:a.test"}},
        {"edu_type": "m.presence", "content": {"push": []}},
        {"edu_type": "m.typing", "content": "kein Objekt"},
        {"no_type": True},
    ]
    body = {"origin": "b.test", "origin_server_ts": 1, "pdus": [], "edus": edus}
    answer = await b.listener.client.request("PUT", "a.test",
                                             "/_matrix/federation/v1/send/bad-edus",
                                             content=body)
    assert answer == {"pdus": {}}
    assert a.server.typing.typing_in(room_id) == []
    async with a.school.db.read() as session:
        assert await device_messages.receipts_between(session, [room_id], 0, 2 ** 62) == {}
        assert await device_messages.to_device_for(session, account_a.id, "DEVA", 0,
                                                   2 ** 62, 10) == []
        assert await device_messages.changed_users(session, 0, 2 ** 62,
                                                   ["@lehrera:a.test"]) == set()


async def test_a_to_device_message_id_is_delivered_once(pair: dict[str, Side]) -> None:
    a, b = pair["a"], pair["b"]
    await shared_room(a, b)
    account_a = await a.school.directory.get_account("lehrera")
    async with a.school.db.write() as session:
        await devices.ensure_device(session, account_a.id, "DEVA", "Laptop")
    edu = {"edu_type": "m.direct_to_device", "content": {
        "sender": "@lehrerb:b.test", "type": "m.room_key_request", "message_id": "same",
        "messages": {"@lehrera:a.test": {"*": {"action": "request"}}}}}
    for txn in ("t1", "t2"):  # two transactions carrying the same message
        await b.listener.client.request(
            "PUT", "a.test", f"/_matrix/federation/v1/send/{txn}",
            content={"origin": "b.test", "origin_server_ts": 1, "pdus": [], "edus": [edu]})
    async with a.school.db.read() as session:
        got = await device_messages.to_device_for(session, account_a.id, "DEVA", 0, 2 ** 62,
                                                  10)
    assert [m["content"] for _, m in got] == [{"action": "request"}]


