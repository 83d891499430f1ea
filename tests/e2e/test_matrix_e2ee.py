"""End-to-end encryption through the server with two nio clients (vodozemac):
device keys, one-time key claims, to-device messages carrying the Megolm room
key, and an encrypted message decrypted on the other side.  Also typing and
read receipts reaching the other client's /sync as ephemeral events."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    EnableEncryptionBuilder,
    JoinResponse,
    LoginResponse,
    MegolmEvent,
    ReceiptEvent,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
    TypingNoticeEvent,
)
from nio.crypto import ENCRYPTION_ENABLED

from conf.app import School
from directory.model import Role
from messenger.server import MatrixServer

DOMAIN = "schule.test"
PASSWORD = "correct horse battery"


@pytest.fixture
async def server(running_school: School) -> MatrixServer:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="anna", password=PASSWORD)
    return next(s for s in running_school.services if isinstance(s, MatrixServer))


async def login(server: MatrixServer, name: str, store: Path,
                made: list[AsyncClient]) -> AsyncClient:
    store.mkdir(parents=True, exist_ok=True)
    client = AsyncClient(server.base_url, f"@{name}:{DOMAIN}", store_path=str(store),
                         config=AsyncClientConfig(encryption_enabled=True,
                                                  store_sync_tokens=False))
    made.append(client)
    assert isinstance(await client.login(PASSWORD, device_name=name), LoginResponse)
    return client


async def sync(client: AsyncClient, timeout: int = 0) -> SyncResponse:
    """One sync plus the key bookkeeping nio's sync_forever would do."""
    response = await client.sync(timeout=timeout)
    assert isinstance(response, SyncResponse), response
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    return response


@pytest.mark.skipif(not ENCRYPTION_ENABLED, reason="nio without vodozemac")
async def test_encrypted_room_between_two_nio_clients(server: MatrixServer, tmp_path: Path,
                                                      clients: list[AsyncClient]) -> None:
    teacher = await login(server, "lehrer", tmp_path / "t", clients)
    pupil = await login(server, "anna", tmp_path / "p", clients)
    for client in (teacher, pupil):
        await sync(client)
        assert not client.should_upload_keys  # keys are on the server now
    first = await pupil.sync(timeout=0)
    assert first.device_key_count.signed_curve25519 > 0

    created = await teacher.room_create(name="Vertraulich", invite=[pupil.user_id],
                                        initial_state=[EnableEncryptionBuilder().as_dict()])
    assert isinstance(created, RoomCreateResponse), created
    await sync(pupil, 5000)
    assert isinstance(await pupil.join(created.room_id), JoinResponse)
    await sync(pupil)
    await sync(teacher, 5000)
    assert teacher.rooms[created.room_id].encrypted

    sent = await teacher.room_send(created.room_id, "m.room.message",
                                   {"msgtype": "m.text", "body": "Noten: streng geheim"},
                                   ignore_unverified_devices=True)
    assert isinstance(sent, RoomSendResponse), sent

    # The server stored only ciphertext...
    auth = {"Authorization": f"Bearer {teacher.access_token}"}
    async with aiohttp.ClientSession() as http, http.get(
            f"{server.base_url}/_matrix/client/v3/rooms/{created.room_id}/event/"
            f"{sent.event_id}", headers=auth) as r:
        stored = await r.json()
    assert stored["type"] == "m.room.encrypted" and "geheim" not in str(stored)
    # ...and the pupil's nio decrypts it with the room key sent to its device.
    got = await sync(pupil, 5000)
    events = got.rooms.join[created.room_id].timeline.events
    assert not [e for e in events if isinstance(e, MegolmEvent)], "undecryptable"
    texts = [e.body for e in events if isinstance(e, RoomMessageText)]
    assert texts == ["Noten: streng geheim"]


async def test_typing_and_receipts_reach_the_other_client(
        server: MatrixServer, tmp_path: Path, clients: list[AsyncClient]) -> None:
    teacher = AsyncClient(server.base_url, f"@lehrer:{DOMAIN}")
    pupil = AsyncClient(server.base_url, f"@anna:{DOMAIN}")
    clients += [teacher, pupil]
    for client in (teacher, pupil):
        assert isinstance(await client.login(PASSWORD), LoginResponse)
    created = await teacher.room_create(name="Klasse", invite=[pupil.user_id])
    room_id = created.room_id
    await pupil.sync(timeout=0)
    await pupil.join(room_id)
    await pupil.sync(timeout=0)
    await teacher.sync(timeout=0)

    assert (await teacher.room_typing(room_id, True, timeout=30000)).transport_response.ok
    seen = await pupil.sync(timeout=5000)
    typing = [e for e in seen.rooms.join[room_id].ephemeral if isinstance(e, TypingNoticeEvent)]
    assert typing and typing[-1].users == [teacher.user_id]
    await teacher.room_typing(room_id, False)
    stopped = await pupil.sync(timeout=5000)
    typing = [e for e in stopped.rooms.join[room_id].ephemeral
              if isinstance(e, TypingNoticeEvent)]
    assert typing and typing[-1].users == []

    sent = await teacher.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "?"})
    await pupil.sync(timeout=5000)
    assert (await pupil.room_read_markers(room_id, sent.event_id, sent.event_id)
            ).transport_response.ok
    got = await teacher.sync(timeout=5000)
    receipts = [r for e in got.rooms.join[room_id].ephemeral if isinstance(e, ReceiptEvent)
                for r in e.receipts]
    assert any(r.user_id == pupil.user_id and r.event_id == sent.event_id
               and r.receipt_type == "m.read" for r in receipts)
    # Once seen, a receipt is not sent again.
    quiet = await teacher.sync(timeout=0)
    assert room_id not in quiet.rooms.join
