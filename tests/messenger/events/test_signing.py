"""Event signatures and the receipt checks (Server-Server API "Signing events",
"Checks performed on receipt of a PDU" steps 2-3)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.matrix.signed_json import SigningKey
from messenger.events.hashing import add_hashes, event_id_for
from messenger.events.room_versions import V10, V11, RoomVersion
from messenger.events.signing import (
    EventSignatureError,
    EventSigner,
    check_received,
    check_received_pdu,
)

A_KEY = SigningKey.from_seed(bytes(range(32)), "a1")
B_KEY = SigningKey.from_seed(bytes(range(1, 33)), "b1")
KEYS = {("a.test", A_KEY.key_id): A_KEY.public_key_base64,
        ("b.test", B_KEY.key_id): B_KEY.public_key_base64}


async def key_of(server: str, key_id: str, ts: int) -> str:
    return KEYS[(server, key_id)]


def message(body: str = "Hallo", sender: str = "@anna:a.test") -> dict[str, Any]:
    return add_hashes({
        "room_id": "!r:a.test", "sender": sender, "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": body}, "origin_server_ts": 1000,
        "depth": 3, "prev_events": ["$p"], "auth_events": ["$a"]})


@pytest.mark.parametrize("version", [V10, V11])
async def test_signed_event_passes_and_keeps_its_id(version: RoomVersion) -> None:
    pdu = message()
    signed = EventSigner("a.test", A_KEY).sign(pdu, version)
    assert event_id_for(signed, version) == event_id_for(pdu, version)
    assert await check_received_pdu(signed, version, key_of) == signed
    assert await check_received(signed, version, key_of) == (
        signed, event_id_for(signed, version))


async def test_changed_content_is_kept_redacted() -> None:
    signed = EventSigner("a.test", A_KEY).sign(message(), V11)
    tampered = copy.deepcopy(signed)
    tampered["content"]["body"] = "Gib mir dein Passwort"
    kept = await check_received_pdu(tampered, V11, key_of)
    assert kept["content"] == {} and kept["type"] == "m.room.message"
    # The id stays the received PDU's (its reference hash covers the redacted form).
    assert (await check_received(tampered, V11, key_of))[1] == event_id_for(tampered, V11) \
        == event_id_for(kept, V11)


@pytest.mark.parametrize("change", [
    lambda e: e.update(type="m.room.name"),
    lambda e: e.update(prev_events=["$other"]),
    lambda e: e.update(sender="@mallory:a.test"),
    lambda e: e.pop("signatures"),
    lambda e: e.update(signatures={"b.test": e["signatures"]["a.test"]}),
])
async def test_changed_signed_fields_or_missing_signature_are_refused(change: Any) -> None:
    tampered = EventSigner("a.test", A_KEY).sign(message(), V11)
    change(tampered)
    with pytest.raises(EventSignatureError):
        await check_received_pdu(tampered, V11, key_of)


async def test_another_servers_signature_does_not_count_for_the_sender() -> None:
    """b.test signs an event of a.test's user: a.test's signature is required."""
    forged = EventSigner("b.test", B_KEY).sign(message(), V11)
    with pytest.raises(EventSignatureError, match=r"a\.test"):
        await check_received_pdu(forged, V11, key_of)


async def test_restricted_join_needs_the_authorising_server_too() -> None:
    join = add_hashes({
        "room_id": "!r:a.test", "sender": "@bert:b.test", "type": "m.room.member",
        "state_key": "@bert:b.test", "origin_server_ts": 1, "depth": 4,
        "prev_events": [], "auth_events": [],
        "content": {"membership": "join", "join_authorised_via_users_server": "@anna:a.test"}})
    only_b = EventSigner("b.test", B_KEY).sign(join, V11)
    with pytest.raises(EventSignatureError, match=r"a\.test"):
        await check_received_pdu(only_b, V11, key_of)
    both = EventSigner("a.test", A_KEY).sign(only_b, V11)
    assert await check_received_pdu(both, V11, key_of) == both


@given(st.text(max_size=50), st.sampled_from([V10, V11]))
async def test_any_body_round_trips(body: str, version: RoomVersion) -> None:
    signed = EventSigner("a.test", A_KEY).sign(message(body), version)
    assert await check_received_pdu(signed, version, key_of) == signed
