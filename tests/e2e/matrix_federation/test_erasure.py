"""Erasure (GDPR Art. 17) reaches the other schools: the erased pupil's events in a
room shared with a partner school are redacted there too (a redaction event each,
sent over the Server-Server API) and the pupil leaves; checked with matrix-nio at
the partner school and in its database.  Run as the command line does it (its own
room service, the running server's sender sends the queue)."""

from __future__ import annotations

import json

from nio import AsyncClient, RedactedEvent, RoomGetEventResponse, RoomSendResponse
from sqlalchemy import select

from conf.admin.erasure import erase_account
from directory.audit import Actor
from messenger.events.hashing import event_id_for
from messenger.events.room_versions import room_version
from messenger.storage import events as store
from messenger.storage.tables import EventRow
from tests.e2e.matrix_federation.conftest import ChatSchool
from tests.e2e.matrix_federation.test_room_input import ben_event, send_txn, signed
from tests.e2e.matrix_federation.test_rooms import bodies, invited_and_joined, until

MARKER = "Geheimnis-7f3a9c"


async def test_erased_pupils_events_are_redacted_at_the_partner_school(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    anna, ben, room_id = await invited_and_joined(a, b, clients)
    sent = await anna.room_send(room_id, "m.room.message",
                                {"msgtype": "m.text", "body": f"{MARKER} von Anna"})
    assert isinstance(sent, RoomSendResponse), sent
    await until(ben, lambda c: f"{MARKER} von Anna" in bodies(c, room_id))
    sent_ben = await ben.room_send(room_id, "m.room.message",
                                   {"msgtype": "m.text", "body": "Ben bleibt"})
    assert isinstance(sent_ben, RoomSendResponse), sent_ben

    report = await erase_account(a.school, "anna", Actor("cli:root", ""))
    assert report.messenger.rooms_left == 1
    a.listener.sender.wake()
    await until(ben, lambda c: a.user("anna") not in c.rooms[room_id].users, timeout=40)

    got = await ben.room_get_event(room_id, sent.event_id)
    assert isinstance(got, RoomGetEventResponse), got
    assert isinstance(got.event, RedactedEvent), got.event
    async with b.school.db.read() as session:
        rows = (await session.scalars(select(EventRow).where(
            EventRow.room_id == room_id))).all()
    texts = {r.event_id: r.json for r in rows}
    assert not [e for e, text in texts.items() if MARKER in text], "B still has the text"
    assert json.loads(texts[sent.event_id])["content"] == {}
    # Ben's own message stays.
    assert json.loads(texts[sent_ben.event_id])["content"]["body"] == "Ben bleibt"


async def test_an_erased_users_open_invitation_is_declined_at_the_inviting_school(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    """An invitation from A that Ben never answered: erasing Ben at B declines it at A
    (``make_leave``/``send_leave`` from the command's room service), so A's room does
    not keep an invitation of an account that no longer exists."""
    from nio import RoomCreateResponse

    from messenger.storage import events as store
    from tests.e2e.matrix_federation.test_rooms import login

    a, b = chat_schools["a"], chat_schools["b"]
    anna = await login(a, "anna", clients)
    created = await anna.room_create(name="Einladung", invite=[b.user("ben")])
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id

    async def membership(school: ChatSchool) -> str | None:
        async with school.school.db.read() as session:
            row = await store.membership(session, room_id, b.user("ben"))
        return None if row is None else row.membership

    assert (await membership(a), await membership(b)) == ("invite", "invite")
    report = await erase_account(b.school, "ben", Actor("cli:root", ""), reason="leaver")
    assert report.messenger.rooms_left == 1
    assert (await membership(a), await membership(b)) == ("leave", "leave")
    await until(anna, lambda c: room_id in c.rooms
                and b.user("ben") not in c.rooms[room_id].invited_users)


async def test_received_redactions_follow_the_servers_and_power_rule(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    """At school A a redaction from B applies to B's own user's event, not to A's user's
    event (ben has no redact power level in anna's room): stored, but not applied."""
    a, b = chat_schools["a"], chat_schools["b"]
    anna, ben, room_id = await invited_and_joined(a, b, clients)
    mine = await anna.room_send(room_id, "m.room.message",
                                {"msgtype": "m.text", "body": "Annas Text bleibt"})
    theirs = await ben.room_send(room_id, "m.room.message",
                                 {"msgtype": "m.text", "body": "Bens Text geht"})
    assert isinstance(mine, RoomSendResponse) and isinstance(theirs, RoomSendResponse)
    await until(anna, lambda c: "Bens Text geht" in bodies(c, room_id))
    version = "10"
    key = b.listener.context.signing_key
    for target in (mine.event_id, theirs.event_id):
        pdu = await ben_event(a, room_id, "", type="m.room.redaction", content={},
                              redacts=target)
        answer = await send_txn(b, [signed(pdu, key, version)])
        assert not any("error" in r for r in answer.get("pdus", {}).values()), answer
    async with a.school.db.read() as session:
        kept = await store.get_event(session, mine.event_id)
        gone = await store.get_event(session, theirs.event_id)
    assert kept is not None and kept.redacted_by is None
    assert kept.pdu["content"]["body"] == "Annas Text bleibt"
    assert gone is not None and gone.redacted_by is not None and gone.pdu["content"] == {}


async def test_a_redaction_before_its_target_applies_when_the_target_arrives(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    """Ben's redaction reaches A before the message it redacts (B could not hand the
    message over when A asked): kept, and applied the moment the message arrives,
    so anna never sees its text (issue 17)."""
    a, b = chat_schools["a"], chat_schools["b"]
    anna, _ben, room_id = await invited_and_joined(a, b, clients)
    version = room_version("10")
    key = b.listener.context.signing_key
    message = signed(await ben_event(a, room_id, f"zu spät {MARKER}"), key, "10")
    message_id = event_id_for(message, version)
    redaction = signed(await ben_event(
        a, room_id, "", type="m.room.redaction", content={}, redacts=message_id,
        prev_events=[message_id], depth=message["depth"] + 1), key, "10")
    answer = await send_txn(b, [redaction])
    assert not any("error" in r for r in answer.get("pdus", {}).values()), answer
    async with a.school.db.read() as session:
        assert await store.get_event(session, message_id) is None  # B did not have it
    answer = await send_txn(b, [message])
    assert not any("error" in r for r in answer.get("pdus", {}).values()), answer
    async with a.school.db.read() as session:
        stored = await store.get_event(session, message_id)
    assert stored is not None and stored.redacted_by == event_id_for(redaction, version)
    assert stored.pdu["content"] == {}
    got = await anna.room_get_event(room_id, message_id)
    assert isinstance(got, RoomGetEventResponse) and isinstance(got.event, RedactedEvent), got
    # Both in one transaction, the redaction first: the batch's own redactions count.
    message = signed(await ben_event(a, room_id, f"auch zu spät {MARKER}"), key, "10")
    message_id = event_id_for(message, version)
    redaction = signed(await ben_event(
        a, room_id, "", type="m.room.redaction", content={}, redacts=message_id,
        prev_events=[message_id], depth=message["depth"] + 1), key, "10")
    answer = await send_txn(b, [redaction, message])
    assert not any("error" in r for r in answer.get("pdus", {}).values()), answer
    async with a.school.db.read() as session:
        stored = await store.get_event(session, message_id)
    assert stored is not None and stored.redacted_by == event_id_for(redaction, version)
    assert stored.pdu["content"] == {}
    await anna.sync(timeout=0)
    assert not any(MARKER in body for body in bodies(anna, room_id))
