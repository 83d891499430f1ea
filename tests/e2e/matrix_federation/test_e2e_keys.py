"""Federation end-to-end key endpoints between two schools (Server-Server API
"End-to-End Encryption"): answers, and bad input refused with a Matrix error, never
a 500 (issue 13.4)."""

from __future__ import annotations

import json

import aiohttp
import pytest

from federation.matrix.canonical_json import CanonicalJsonError
from federation.matrix.client import FederationRequestError
from federation.matrix.request_auth import authorization_header
from messenger.storage import user_data
from tests.e2e.matrix_federation.conftest import Peer, peer_tls


async def _signed_raw(a: Peer, b: Peer, method: str, path: str,
                      body: bytes) -> tuple[int, dict[str, object]]:
    """A request from A to B with a raw body, signed over what the body parses to."""
    try:
        content = json.loads(body)
    except ValueError:
        content = None
    try:
        header = authorization_header(a.key, a.name, b.name, method, path, content)
    except CanonicalJsonError:  # content nobody can sign: signed as if there were none
        header = authorization_header(a.key, a.name, b.name, method, path, None)
    async with aiohttp.ClientSession() as http, http.request(
            method, b.url(path), data=body, ssl=peer_tls(b), server_hostname=b.name,
            headers={"Authorization": header,
                     "Content-Type": "application/json"}) as response:
        return response.status, json.loads(await response.read())


async def _keys_for(peer: Peer, login: str) -> tuple[int, dict[str, object]]:
    account = await peer.school.directory.get_account(login)
    user_id = f"@{login}:{peer.name}"
    device = {"user_id": user_id, "device_id": "DEV1", "algorithms": ["m.olm.v1"],
              "keys": {"ed25519:DEV1": "x", "curve25519:DEV1": "y"}}
    async with peer.school.db.write() as session:
        from messenger.storage import devices

        await devices.ensure_device(session, account.id, "DEV1", "Laptop")
        await user_data.set_device_keys(session, account.id, "DEV1", device)
        await user_data.add_one_time_keys(session, account.id, "DEV1",
                                          {"signed_curve25519:AAAA": {"key": "k1"}})
    return account.id, device


async def test_devices_query_and_claim(peers: dict[str, Peer]) -> None:
    a, b = peers["a"], peers["b"]
    _, device = await _keys_for(b, "lehrerb")
    client = a.listener.client
    devices = await client.request("GET", "b.test",
                                   "/_matrix/federation/v1/user/devices/@lehrerb:b.test")
    assert devices["user_id"] == "@lehrerb:b.test"
    assert devices["devices"] == [{"device_id": "DEV1", "keys": device,
                                   "device_display_name": "Laptop"}]
    queried = await client.request("POST", "b.test", "/_matrix/federation/v1/user/keys/query",
                                   content={"device_keys": {"@lehrerb:b.test": [],
                                                            "@niemand:b.test": []}})
    assert queried["device_keys"] == {"@lehrerb:b.test": {"DEV1": device}}
    wanted = {"one_time_keys": {"@lehrerb:b.test": {"DEV1": "signed_curve25519"}}}
    first = await client.request("POST", "b.test", "/_matrix/federation/v1/user/keys/claim",
                                 content=wanted)
    assert first["one_time_keys"] == {
        "@lehrerb:b.test": {"DEV1": {"signed_curve25519:AAAA": {"key": "k1"}}}}
    second = await client.request("POST", "b.test", "/_matrix/federation/v1/user/keys/claim",
                                  content=wanted)
    assert second["one_time_keys"] == {}  # a one-time key is handed out once


async def test_devices_of_another_servers_user_are_refused(peers: dict[str, Peer]) -> None:
    with pytest.raises(FederationRequestError) as refused:
        await peers["a"].listener.client.request(
            "GET", "b.test", "/_matrix/federation/v1/user/devices/@lehrera:a.test")
    assert (refused.value.status, refused.value.errcode) == (403, "M_FORBIDDEN")


BAD_KEY_REQUESTS = [
    ("/_matrix/federation/v1/user/keys/query", b"{not json", "M_NOT_JSON"),
    ("/_matrix/federation/v1/user/keys/query", b"[]", "M_BAD_JSON"),
    ("/_matrix/federation/v1/user/keys/query", b'{"device_keys": 5}', "M_BAD_JSON"),
    ("/_matrix/federation/v1/user/keys/query", b'{"device_keys": {"@x:b.test": "DEV"}}',
     "M_BAD_JSON"),
    ("/_matrix/federation/v1/user/keys/claim", b'{"one_time_keys": []}', "M_BAD_JSON"),
    ("/_matrix/federation/v1/user/keys/claim",
     b'{"one_time_keys": {"@lehrerb:b.test": {"DEV1": 7}}}', "M_BAD_JSON"),
    ("/_matrix/federation/v1/user/keys/claim",
     b'{"one_time_keys": {"@lehrerb:b.test": {"DEV1": "signed_\\u0000"}}}', "M_BAD_JSON"),
    ("/_matrix/federation/v1/user/keys/claim",
     json.dumps({"one_time_keys": {"@lehrerb:b.test": {
         f"D{i}": "signed_curve25519" for i in range(1001)}}}).encode(), "M_BAD_JSON"),
]


async def test_bad_key_requests_are_refused(peers: dict[str, Peer]) -> None:
    # One pair of schools for all the requests (a set-up costs seconds).
    await _keys_for(peers["b"], "lehrerb")
    for path, body, errcode in BAD_KEY_REQUESTS:
        status, answer = await _signed_raw(peers["a"], peers["b"], "POST", path, body)
        assert (status, answer["errcode"]) == (400, errcode), (path, body[:80])


async def test_bad_user_id_in_devices_path(peers: dict[str, Peer]) -> None:
    status, answer = await _signed_raw(peers["a"], peers["b"], "GET",
                                       "/_matrix/federation/v1/user/devices/nobody", b"")
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM")


async def test_a_body_nobody_can_sign_is_refused(peers: dict[str, Peer]) -> None:
    """A lone surrogate has no canonical JSON: no signature can cover the body."""
    status, answer = await _signed_raw(
        peers["a"], peers["b"], "POST", "/_matrix/federation/v1/user/keys/query",
        b'{"device_keys": {"@lehrerb:b.test": ["\\ud800"]}}')
    assert status in (400, 401) and answer["errcode"] in ("M_BAD_JSON", "M_UNAUTHORIZED")


async def test_unstorable_path_parameters_are_refused(peers: dict[str, Peer]) -> None:
    for path in ("/_matrix/federation/v1/user/devices/%40lehrerb%3Ab.test%00",
                 "/_matrix/federation/v1/user/devices/" + "x" * 300):
        status, answer = await _signed_raw(peers["a"], peers["b"], "GET", path, b"")
        assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM"), path[:60]
