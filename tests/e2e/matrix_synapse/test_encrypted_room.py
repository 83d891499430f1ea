"""An end-to-end encrypted room between Synapse and a Schulhof school, matrix-nio
(vodozemac) at each side (issue 13, "including an encrypted room"): device keys
queried and one-time keys claimed across servers, the Megolm room key sent as an
Olm-encrypted to-device message over federation (m.direct_to_device), and each
side decrypts the other's message. Also typing and read receipts (EDUs) arrive
at the other side's client."""

from __future__ import annotations

from pathlib import Path

import pytest
from nio import (
    AsyncClient,
    EnableEncryptionBuilder,
    JoinResponse,
    RoomCreateResponse,
    RoomSendResponse,
)
from nio.crypto import ENCRYPTION_ENABLED

from tests.e2e.matrix_synapse.conftest import (
    ON_SHARED_LOOP,
    PASSWORD,
    SYNAPSE_TEST_TIMEOUT,
    Interop,
)
from tests.support.nio_watch import login

pytestmark = [pytest.mark.synapse, pytest.mark.timeout(SYNAPSE_TEST_TIMEOUT), ON_SHARED_LOOP,
              pytest.mark.skipif(not ENCRYPTION_ENABLED, reason="nio without vodozemac")]


async def test_encrypted_room_decrypts_both_ways(interop: Interop, tmp_path: Path,
                                                 clients: list[AsyncClient]) -> None:
    a = interop.schools["a"]
    await interop.synapse_user("anna", "Anna Synapse")
    lehrer = await login(a.matrix.base_url, interop.teacher_id(), PASSWORD, tmp_path / "l", clients)
    anna = await login(interop.synapse.client_url, interop.synapse_id("anna"), PASSWORD,
                       tmp_path / "a", clients)
    created = await lehrer.client.room_create(
        name="Vertraulich", invite=[anna.client.user_id],
        initial_state=[EnableEncryptionBuilder().as_dict()])
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    await anna.until(lambda w: room_id in w.client.invited_rooms)
    assert isinstance(await anna.client.join(room_id), JoinResponse)
    await anna.until(lambda w: room_id in w.client.rooms)
    await lehrer.until(lambda w: room_id in w.client.rooms
                       and anna.client.user_id in w.client.rooms[room_id].users)
    assert lehrer.client.rooms[room_id].encrypted and anna.client.rooms[room_id].encrypted

    sent = await lehrer.client.room_send(room_id, "m.room.message",
                                         {"msgtype": "m.text", "body": "Geheim aus Schulhof"},
                                         ignore_unverified_devices=True)
    assert isinstance(sent, RoomSendResponse), sent
    await anna.until(lambda w: (interop.teacher_id(), "Geheim aus Schulhof") in w.texts)

    await anna.sync()  # anna's client learns lehrer's device before it encrypts
    sent = await anna.client.room_send(room_id, "m.room.message",
                                       {"msgtype": "m.text", "body": "Geheim aus Synapse"},
                                       ignore_unverified_devices=True)
    assert isinstance(sent, RoomSendResponse), sent
    await lehrer.until(lambda w: (anna.client.user_id, "Geheim aus Synapse") in w.texts)

    # Typing and a read receipt from Synapse's user reach the school's client (EDUs).
    await anna.client.room_typing(room_id, True, timeout=20_000)
    await lehrer.until(lambda w: [anna.client.user_id] in w.typing)
    await anna.client.room_read_markers(room_id, sent.event_id, sent.event_id)
    await lehrer.until(lambda w: (anna.client.user_id, sent.event_id) in w.receipts)
    # ...and the school's user's typing reaches Synapse's.
    await lehrer.client.room_typing(room_id, True, timeout=20_000)
    await anna.until(lambda w: [interop.teacher_id()] in w.typing)
