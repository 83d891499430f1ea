"""Bad and concurrent input to a room shared by two schools (Server-Server API
"Checks performed on receipt of a PDU", "Soft failure", "Room State
Resolution"): forged signatures, unknown prev_events, auth events that do not
match, malformed PDUs and replayed transactions are refused or handled, never
a 500 or a stuck room; concurrent state changes on both sides converge."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from nio import AsyncClient, RoomGetStateEventResponse, RoomSendResponse

from federation.matrix.signed_json import SigningKey
from messenger.events.hashing import add_hashes, event_id_for
from messenger.events.room_versions import room_version
from messenger.events.signing import EventSigner
from messenger.storage import dag
from messenger.storage import events as store
from tests.e2e.matrix_federation.conftest import ChatSchool
from tests.e2e.matrix_federation.test_rooms import bodies, invited_and_joined, until

_txn = itertools.count()


async def ben_event(a: ChatSchool, room_id: str, body: str, **override: Any
                    ) -> dict[str, Any]:
    """A message of ben@b.test after A's current extremities, as B would build it."""
    async with a.school.db.read() as session:
        state = await store.current_state(session, room_id)
        extremities = await dag.forward_extremities(session, room_id)
    pdu: dict[str, Any] = {
        "room_id": room_id, "sender": "@ben:b.test", "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": body}, "origin_server_ts": 1_800_000_000_000,
        "depth": max(extremities.values()) + 1, "prev_events": sorted(extremities),
        "auth_events": [state[k].event_id for k in (
            ("m.room.create", ""), ("m.room.power_levels", ""),
            ("m.room.member", "@ben:b.test"))]}
    pdu.update(override)
    return pdu


def signed(pdu: dict[str, Any], key: SigningKey, version: str) -> dict[str, Any]:
    return EventSigner("b.test", key).sign(add_hashes(pdu), room_version(version))


async def send_txn(b: ChatSchool, pdus: list[dict[str, Any]], txn_id: str | None = None
                   ) -> dict[str, Any]:
    txn = txn_id or f"t{next(_txn)}"
    answer = await b.listener.client.request(
        "PUT", "a.test", f"/_matrix/federation/v1/send/{txn}",
        content={"origin": "b.test", "origin_server_ts": 1, "pdus": pdus, "edus": []})
    assert isinstance(answer, dict)
    return answer


async def in_timeline(a: ChatSchool, event_id: str) -> bool:
    async with a.school.db.read() as session:
        return await store.get_event(session, event_id) is not None


async def test_bad_pdus_are_refused_and_the_room_goes_on(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    anna, ben, room_id = await invited_and_joined(a, b, clients)
    version = "10"
    b_key = b.listener.context.signing_key

    # A forged signature: B's key id, another key.
    forger = SigningKey.from_seed(b"\x01" * 32, b_key.key_id.split(":", 1)[1])
    forged = signed(await ben_event(a, room_id, "gefälscht"), forger, version)
    forged_id = event_id_for(forged, room_version(version))
    answer = await send_txn(b, [forged])
    assert "signature" in answer["pdus"][forged_id]["error"]
    assert not await in_timeline(a, forged_id)

    # Auth events that do not match: the room name event is not one a message names.
    async with a.school.db.read() as session:
        name = (await store.current_state(session, room_id))[("m.room.name", "")]
    bad_auth = await ben_event(a, room_id, "falsche auth")
    bad_auth["auth_events"] = [*bad_auth["auth_events"], name.event_id]
    bad_auth = signed(bad_auth, b_key, version)
    bad_auth_id = event_id_for(bad_auth, room_version(version))
    answer = await send_txn(b, [bad_auth])
    assert "not relevant" in answer["pdus"][bad_auth_id]["error"]
    assert not await in_timeline(a, bad_auth_id)

    # Malformed: a depth that is no integer.  Refused with a reason, not a 500.
    malformed = signed(await ben_event(a, room_id, "kaputt", depth="tief"), b_key, version)
    answer = await send_txn(b, [malformed])
    assert any("depth" in r.get("error", "") for r in answer["pdus"].values())

    # Unknown prev_events: B has no such events either; the event still lands.
    orphan = signed(await ben_event(a, room_id, "Waise", prev_events=["$unbekannt"]),
                    b_key, version)
    orphan_id = event_id_for(orphan, room_version(version))
    answer = await send_txn(b, [orphan])
    assert answer["pdus"][orphan_id] == {}
    assert await in_timeline(a, orphan_id)
    await until(anna, lambda c: "Waise" in bodies(c, room_id))

    # A replayed transaction is answered from the record and stored once.
    again = signed(await ben_event(a, room_id, "einmal"), b_key, version)
    first = await send_txn(b, [again], "replay-1")
    second = await send_txn(b, [again], "replay-1")
    assert first == second
    async with a.school.db.read() as session:
        events = await store.room_events(session, room_id, after=0, upto=10**9, limit=500,
                                         newest_first=False)
    assert [e.pdu["content"].get("body") for e in events].count("einmal") == 1

    # The room is not stuck: both sides still talk.
    sent = await anna.room_send(room_id, "m.room.message",
                                {"msgtype": "m.text", "body": "weiter geht's"})
    assert isinstance(sent, RoomSendResponse)
    await until(ben, lambda c: "weiter geht's" in bodies(c, room_id))
    sent = await ben.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "ja"})
    assert isinstance(sent, RoomSendResponse)
    await until(anna, lambda c: "ja" in bodies(c, room_id))


async def topic_at(client: AsyncClient, room_id: str) -> str:
    answer = await client.room_get_state_event(room_id, "m.room.topic")
    assert isinstance(answer, RoomGetStateEventResponse), answer
    return str(answer.content.get("topic"))


async def test_concurrent_state_changes_converge(chat_schools: dict[str, ChatSchool],
                                                 clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    anna, ben, room_id = await invited_and_joined(a, b, clients)
    power = await anna.room_get_state_event(room_id, "m.room.power_levels")
    assert isinstance(power, RoomGetStateEventResponse)
    levels = dict(power.content)
    levels["users"] = {**levels.get("users", {}), b.user("ben"): 50}
    await anna.room_put_state(room_id, "m.room.power_levels", levels)

    async def ben_is_moderator() -> bool:
        async with b.school.db.read() as session:
            state = await store.current_state(session, room_id, [("m.room.power_levels", "")])
        pl = state.get(("m.room.power_levels", ""))
        return pl is not None and pl.pdu["content"].get("users", {}).get("@ben:b.test") == 50
    deadline = asyncio.get_running_loop().time() + 20
    while not await ben_is_moderator():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)

    # Both change the topic while neither hears the other (both senders held).
    await a.listener.sender.stop()
    await b.listener.sender.stop()
    await anna.room_put_state(room_id, "m.room.topic", {"topic": "von A"})
    await ben.room_put_state(room_id, "m.room.topic", {"topic": "von B"})
    assert await topic_at(anna, room_id) == "von A"
    assert await topic_at(ben, room_id) == "von B"
    a.listener.sender.start()
    b.listener.sender.start()
    a.listener.sender.wake()
    b.listener.sender.wake()

    deadline = asyncio.get_running_loop().time() + 30
    while True:
        at_a, at_b = await topic_at(anna, room_id), await topic_at(ben, room_id)
        async with a.school.db.read() as session:
            forks_a = await dag.forward_extremities(session, room_id)
        async with b.school.db.read() as session:
            forks_b = await dag.forward_extremities(session, room_id)
        if at_a == at_b and forks_a == forks_b:
            break
        assert asyncio.get_running_loop().time() < deadline, (at_a, at_b, forks_a, forks_b)
        await asyncio.sleep(0.2)
    assert at_a in ("von A", "von B")
    assert len(forks_a) == 2  # the fork is there; the next event merges it
    sent = await anna.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "eins"})
    assert isinstance(sent, RoomSendResponse)
    async with a.school.db.read() as session:
        merged = await store.get_event(session, sent.event_id)
    assert merged is not None and set(merged.pdu["prev_events"]) == set(forks_a)
    await until(ben, lambda c: "eins" in bodies(c, room_id))
    assert await topic_at(ben, room_id) == at_a


async def test_one_transaction_is_judged_event_by_event_in_order(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    """The PDUs of a transaction are stored in one write, each judged against the
    state the ones before it made: a message after its sender's leave in the same
    transaction is refused, and an event given twice is judged (and answered) once."""
    a, b = chat_schools["a"], chat_schools["b"]
    anna, _, room_id = await invited_and_joined(a, b, clients)
    version, key = "10", b.listener.context.signing_key
    before = signed(await ben_event(a, room_id, "vorher"), key, version)
    before_id = event_id_for(before, room_version(version))
    leave = await ben_event(a, room_id, "", type="m.room.member", state_key="@ben:b.test",
                            content={"membership": "leave"}, prev_events=[before_id],
                            depth=before["depth"] + 1)
    leave = signed(leave, key, version)
    leave_id = event_id_for(leave, room_version(version))
    # Its auth events name Ben's join, which allows it; the state before it does not.
    after = signed(await ben_event(a, room_id, "nachher", prev_events=[leave_id],
                                   depth=leave["depth"] + 1), key, version)
    after_id = event_id_for(after, room_version(version))

    answer = await send_txn(b, [before, leave, after, after])

    assert answer["pdus"][before_id] == {} and answer["pdus"][leave_id] == {}
    assert "state before the event" in answer["pdus"][after_id]["error"]
    assert await in_timeline(a, before_id) and await in_timeline(a, leave_id)
    assert not await in_timeline(a, after_id)
    async with a.school.db.read() as session:
        state = await store.current_state(session, room_id)
        extremities = await dag.forward_extremities(session, room_id)
    assert state[("m.room.member", "@ben:b.test")].event_id == leave_id
    assert set(extremities) == {leave_id}
    await until(anna, lambda c: "vorher" in bodies(c, room_id))


async def test_a_transactions_record_commits_with_its_events(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    """The record of a transaction (its answer, for a resend) is written in the commit
    of its events, not in a commit of its own; when EDUs are processed after the
    events (a receipt), it is still written after them, so a crash between the two
    cannot answer a resend without them."""
    a, b = chat_schools["a"], chat_schools["b"]
    _, _, room_id = await invited_and_joined(a, b, clients)
    version, key = "10", b.listener.context.signing_key
    received = a.listener.context.received
    separate: list[str] = []
    remember = received.remember

    async def counted(origin: str, txn_id: str, answer: dict[str, Any]) -> None:
        separate.append(txn_id)
        await remember(origin, txn_id, answer)
    received.remember = counted  # type: ignore[method-assign]

    message = signed(await ben_event(a, room_id, "mit Beleg"), key, version)
    message_id = event_id_for(message, room_version(version))
    first = await send_txn(b, [message], "record-1")
    assert first == {"pdus": {message_id: {}}}
    assert separate == []  # no commit of its own
    assert await received.answer_of("b.test", "record-1") == first
    assert await send_txn(b, [message], "record-1") == first  # from the record
    assert await in_timeline(a, message_id)

    later = signed(await ben_event(a, room_id, "mit Quittung"), key, version)
    later_id = event_id_for(later, room_version(version))
    receipt = {"edu_type": "m.receipt", "content": {room_id: {"m.read": {
        "@ben:b.test": {"event_ids": [later_id], "data": {"ts": 1}}}}}}
    answer = await b.listener.client.request(
        "PUT", "a.test", "/_matrix/federation/v1/send/record-2",
        content={"origin": "b.test", "origin_server_ts": 1, "pdus": [later],
                 "edus": [receipt]})
    assert answer == {"pdus": {later_id: {}}}
    assert separate == ["record-2"]
    assert await received.answer_of("b.test", "record-2") == answer
