"""Matrix federation between two schools: discovery, server keys and signed
requests, over real TLS on loopback with names from a loopback DNS server.

The schools and their DNS records: see conftest.py.
"""

from __future__ import annotations

import json

import aiohttp
import pytest

from federation.matrix.client import FederationRequestError
from federation.matrix.request_auth import authorization_header
from federation.matrix.signed_json import SigningKey
from tests.e2e.matrix_federation.conftest import Peer, peer_tls


async def _raw(peer: Peer, method: str, path: str,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.request(
            method, peer.url(path), headers=headers or {}, ssl=peer_tls(peer),
            server_hostname=peer.name) as response:
        return response.status, json.loads(await response.read())


async def test_a_fetches_b_key_through_srv_discovery(peers: dict[str, Peer]) -> None:
    a, b = peers["a"], peers["b"]
    keyring = a.listener.context.keyring
    public = await keyring.verify_key("b.test", b.key.key_id)
    assert public == b.key.public_key_base64
    destination = await a.listener.client.discovery.resolve("b.test")
    assert (destination.host, destination.port, destination.tls_name) == (
        "matrix.b.test", b.listener.port, "b.test")


async def test_key_response_is_self_signed(peers: dict[str, Peer]) -> None:
    from federation.matrix.server_keys import parse_server_keys

    status, body = await _raw(peers["b"], "GET", "/_matrix/key/v2/server")
    assert status == 200
    [key] = parse_server_keys(body, "b.test", 0)
    assert key.key_id == peers["b"].key.key_id


async def test_signed_request_from_partner_is_answered(peers: dict[str, Peer]) -> None:
    answer = await peers["a"].listener.client.request(
        "GET", "b.test", "/_matrix/federation/v1/query/profile",
        query={"user_id": "@lehrerb:b.test"})
    assert answer == {"displayname": "Lehrer B"}


async def test_version_needs_no_signature(peers: dict[str, Peer]) -> None:
    status, body = await _raw(peers["b"], "GET", "/_matrix/federation/v1/version")
    assert status == 200 and body["server"]["name"] == "Schulhof"


async def test_unsigned_request_is_refused(peers: dict[str, Peer]) -> None:
    status, body = await _raw(peers["b"], "GET",
                              "/_matrix/federation/v1/query/profile?user_id=@lehrerb:b.test")
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")


async def test_non_partner_is_refused_in_both_directions(peers: dict[str, Peer]) -> None:
    """C lists B as partner, B does not list C: B refuses C's requests; and A's
    client refuses to talk to C at all."""
    with pytest.raises(FederationRequestError) as refused:
        await peers["c"].listener.client.request(
            "GET", "b.test", "/_matrix/federation/v1/query/profile",
            query={"user_id": "@lehrerb:b.test"})
    assert (refused.value.status, refused.value.errcode) == (403, "M_FORBIDDEN")
    with pytest.raises(FederationRequestError, match="not a federation partner"):
        await peers["a"].listener.client.request("GET", "c.test",
                                                 "/_matrix/federation/v1/version")


async def test_forged_signature_is_refused(peers: dict[str, Peer]) -> None:
    """A request claiming to come from a.test, signed with another key under a.test's
    key id: B fetches a.test's real key and the signature does not verify."""
    a = peers["a"]
    forger = SigningKey(key_id=a.key.key_id, private_key=SigningKey.from_seed(
        bytes(32), "x").private_key)
    path = "/_matrix/federation/v1/query/profile?user_id=%40lehrerb%3Ab.test"
    header = authorization_header(forger, "a.test", "b.test", "GET", path)
    status, body = await _raw(peers["b"], "GET", path, {"Authorization": header})
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")


async def test_request_for_another_destination_is_refused(peers: dict[str, Peer]) -> None:
    path = "/_matrix/federation/v1/query/profile?user_id=%40lehrerb%3Ab.test"
    header = authorization_header(peers["a"].key, "a.test", "c.test", "GET", path)
    status, body = await _raw(peers["b"], "GET", path, {"Authorization": header})
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")


async def test_correctly_signed_raw_request_passes(peers: dict[str, Peer]) -> None:
    """The same raw request as the forgery, signed with A's real key: accepted (so
    the refusals above are about the signature, not the request's shape)."""
    path = "/_matrix/federation/v1/query/profile?user_id=%40lehrerb%3Ab.test"
    header = authorization_header(peers["a"].key, "a.test", "b.test", "GET", path)
    status, body = await _raw(peers["b"], "GET", path, {"Authorization": header})
    assert (status, body) == (200, {"displayname": "Lehrer B"})


async def test_events_of_a_verify_with_the_key_b_fetched(peers: dict[str, Peer]) -> None:
    """Every event school A creates carries A's signature over its redacted form, and
    B checks it with the key B fetched from A's listener (receipt checks 2 and 3)."""
    from conf.wiring.matrix import event_signer
    from messenger.events.room_versions import room_version
    from messenger.events.signing import check_received_pdu
    from messenger.rooms.policy import ChatPolicy
    from messenger.rooms.presets import CreateRoomRequest
    from messenger.rooms.service import RoomService
    from messenger.storage import events as event_store
    from messenger.sync.notifier import Notifier

    a, b = peers["a"], peers["b"]
    # The room service as the school's wiring builds it (with the school's signer).
    rooms = RoomService(a.school.db, "a.test", Notifier(),
                        ChatPolicy(a.school.directory, "a.test", "a.test"),
                        signer=event_signer(a.school))
    room_id = await rooms.create_room_as(
        "@lehrera:a.test", "Lehrer A", CreateRoomRequest(name="Partnerklasse"))
    async with a.school.db.read() as session:
        state = await event_store.current_state(session, room_id)
        room = await event_store.room(session, room_id)
    assert room is not None and state
    keyring = b.listener.context.keyring

    async def key_of(server: str, key_id: str, ts: int) -> str:
        return await keyring.verify_key(server, key_id)

    version = room_version(room.room_version)
    for event in state.values():
        pdu = event.pdu
        assert set(pdu["signatures"]) == {"a.test"}
        assert await check_received_pdu(pdu, version, key_of) == pdu
