"""Unread notification counts as matrix-nio keeps them (``MatrixRoom.unread_notifications``
and ``unread_highlights``, from /v3/sync's ``unread_notifications``; spec:
Client-Server API 8.1, 13.7 read markers, 13.13 push rules), over real sockets."""

from __future__ import annotations

from nio import AsyncClient, RoomReadMarkersResponse, RoomSendResponse, SyncResponse

from tests.e2e import test_matrix_nio
from tests.e2e.test_matrix_nio import logged_in

people = test_matrix_nio.people
base_url = test_matrix_nio.base_url
clients = test_matrix_nio.clients


async def say(client: AsyncClient, room_id: str, body: str, **extra: object) -> str:
    sent = await client.room_send(room_id, "m.room.message",
                                  {"msgtype": "m.text", "body": body, **extra})
    assert isinstance(sent, RoomSendResponse), sent
    return sent.event_id


async def counts(client: AsyncClient, room_id: str) -> tuple[int, int]:
    synced = await client.sync(timeout=0)
    assert isinstance(synced, SyncResponse), synced
    room = client.rooms[room_id]
    return room.unread_notifications, room.unread_highlights


async def test_counts_rise_with_messages_and_mentions_and_drop_with_read_markers(
        base_url: str, people: dict[str, str], clients: list[AsyncClient]) -> None:
    teacher = await logged_in(base_url, people["lehrer"], clients)
    pupil = await logged_in(base_url, people["schueler"], clients)
    parent = await logged_in(base_url, people["mutter"], clients)
    created = await teacher.room_create(name="Elternabend",
                                        invite=[people["schueler"], people["mutter"]])
    room_id = created.room_id  # type: ignore[union-attr]
    for member in (pupil, parent):
        await member.sync(timeout=0)
        await member.join(room_id)
    await pupil.sync(timeout=0)
    assert await counts(pupil, room_id) == (0, 0)

    await say(teacher, room_id, "Elternabend am Dienstag")
    await say(parent, room_id, "Wir kommen")
    assert await counts(pupil, room_id) == (2, 0)
    # Mentioned by display name (the legacy rule) and by m.mentions: highlights.
    await say(teacher, room_id, "Sam Schüler, bitte Zettel mitgeben")
    last = await say(parent, room_id, "Danke", **{"m.mentions": {
        "user_ids": [people["schueler"]]}})
    assert await counts(pupil, room_id) == (4, 2)
    # The teacher's counts are the teacher's own.
    assert await counts(teacher, room_id) == (2, 0)

    marked = await pupil.room_read_markers(room_id, last, last)
    assert isinstance(marked, RoomReadMarkersResponse), marked
    assert await counts(pupil, room_id) == (0, 0)
    await say(teacher, room_id, "Noch eine Frage")
    assert await counts(pupil, room_id) == (1, 0)
