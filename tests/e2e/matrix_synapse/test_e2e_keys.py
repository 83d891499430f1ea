"""End-to-end keys across servers with Synapse: nio clients at each side upload real
Olm device keys; each server's client API hands out the other side's users' keys
(``/keys/query``) and one-time keys (``/keys/claim``) fetched over federation
(``/user/keys/query``, ``/user/keys/claim``) (issue 13.4)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nio import AsyncClient, AsyncClientConfig, KeysUploadResponse, LoginResponse
from nio.crypto import ENCRYPTION_ENABLED

from tests.e2e.matrix_synapse.conftest import (
    ON_SHARED_LOOP,
    PASSWORD,
    SYNAPSE_NAME,
    SYNAPSE_TEST_TIMEOUT,
    Interop,
)

pytestmark = [pytest.mark.synapse, pytest.mark.timeout(SYNAPSE_TEST_TIMEOUT), ON_SHARED_LOOP,
              pytest.mark.skipif(not ENCRYPTION_ENABLED, reason="nio without vodozemac")]


async def nio_with_keys(base_url: str, user_id: str, store: Path,
                        made: list[AsyncClient]) -> AsyncClient:
    """A logged-in nio client that has uploaded its device keys and one-time keys."""
    store.mkdir(parents=True, exist_ok=True)
    client = AsyncClient(base_url, user_id, store_path=str(store),
                         config=AsyncClientConfig(encryption_enabled=True,
                                                  store_sync_tokens=False))
    made.append(client)
    assert isinstance(await client.login(PASSWORD, device_name="nio"), LoginResponse)
    assert isinstance(await client.keys_upload(), KeysUploadResponse)
    return client


async def _post(base_url: str, token: str, path: str, body: object) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(
            f"{base_url}{path}", json=body,
            headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_keys_cross_both_ways(interop: Interop, tmp_path: Path,
                                   clients: list[AsyncClient]) -> None:
    a = interop.schools["a"]
    await interop.synapse_user("anna", "Anna Synapse")
    anna = await nio_with_keys(interop.synapse.client_url, interop.synapse_id("anna"),
                               tmp_path / "anna", clients)
    lehrer = await nio_with_keys(a.matrix.base_url, interop.teacher_id(), tmp_path / "lehrer",
                                 clients)

    # Synapse's client API asks A (POST /_matrix/federation/v1/user/keys/query).
    seen_at_synapse = await _post(interop.synapse.client_url, anna.access_token,
                                  "/_matrix/client/v3/keys/query",
                                  {"device_keys": {lehrer.user_id: []}})
    device = seen_at_synapse["device_keys"][lehrer.user_id][lehrer.device_id]
    assert device["keys"][f"ed25519:{lehrer.device_id}"] == lehrer.olm.account.identity_keys[
        "ed25519"]
    assert seen_at_synapse["failures"] == {}

    # A's client API asks Synapse.
    seen_at_a = await _post(a.matrix.base_url, lehrer.access_token,
                            "/_matrix/client/v3/keys/query",
                            {"device_keys": {anna.user_id: [], "@nobody:c.test": []}})
    device = seen_at_a["device_keys"][anna.user_id][anna.device_id]
    assert device["keys"][f"curve25519:{anna.device_id}"] == anna.olm.account.identity_keys[
        "curve25519"]
    # c.test is no partner of A: a failure, not an error of the whole request.
    assert set(seen_at_a["failures"]) == {"c.test"}

    # One-time keys, both ways: each claim takes a key the other side's device made.
    claimed_at_synapse = await _post(
        interop.synapse.client_url, anna.access_token, "/_matrix/client/v3/keys/claim",
        {"one_time_keys": {lehrer.user_id: {lehrer.device_id: "signed_curve25519"}}})
    [(key_id, key)] = claimed_at_synapse["one_time_keys"][lehrer.user_id][
        lehrer.device_id].items()
    assert key_id.startswith("signed_curve25519:")
    assert "signatures" in key and lehrer.user_id in key["signatures"]

    claimed_at_a = await _post(
        a.matrix.base_url, lehrer.access_token, "/_matrix/client/v3/keys/claim",
        {"one_time_keys": {anna.user_id: {anna.device_id: "signed_curve25519"}}})
    [(key_id, key)] = claimed_at_a["one_time_keys"][anna.user_id][anna.device_id].items()
    assert key_id.startswith("signed_curve25519:")
    assert claimed_at_a["failures"] == {}


async def test_schulhof_reads_synapse_device_list(interop: Interop, tmp_path: Path,
                                                  clients: list[AsyncClient]) -> None:
    """A asks Synapse for a user's devices (GET /user/devices): the answer carries the
    device nio uploaded; A's own answer has the same shape."""
    a = interop.schools["a"]
    await interop.synapse_user("bert", "Bert Synapse")
    bert = await nio_with_keys(interop.synapse.client_url, interop.synapse_id("bert"),
                               tmp_path / "bert", clients)
    lehrer = await nio_with_keys(a.matrix.base_url, interop.teacher_id(), tmp_path / "lehrer",
                                 clients)
    answer = await a.listener.client.request(
        "GET", SYNAPSE_NAME, f"/_matrix/federation/v1/user/devices/{bert.user_id}")
    assert [d["device_id"] for d in answer["devices"]] == [bert.device_id]
    ours = await a.listener.context.local_keys.devices(lehrer.user_id)  # type: ignore[union-attr]
    assert [d["device_id"] for d in ours["devices"]] == [lehrer.device_id]
    assert ours["devices"][0]["keys"]["user_id"] == lehrer.user_id


async def test_a_new_device_reaches_synapse_through_a_device_list_update(
        interop: Interop, tmp_path: Path, clients: list[AsyncClient]) -> None:
    """Once Synapse shares a room with a school's user it keeps that user's device list
    and answers from it; a device the user adds later, or logs out (the last one too),
    is seen only because the school sends m.device_list_update (and Synapse fetches
    GET /user/devices)."""
    a = interop.schools["a"]
    await interop.synapse_user("dora", "Dora Synapse")
    dora = await nio_with_keys(interop.synapse.client_url, interop.synapse_id("dora"),
                               tmp_path / "dora", clients)
    first = await nio_with_keys(a.matrix.base_url, interop.teacher_id(), tmp_path / "first",
                                clients)
    created = await _post(a.matrix.base_url, first.access_token,
                          "/_matrix/client/v3/createRoom",
                          {"name": "Geräte", "invite": [dora.user_id]})
    room_id = created["room_id"]
    await _post(interop.synapse.client_url, dora.access_token,
                f"/_matrix/client/v3/join/{room_id}", {})

    async def devices_seen_at_synapse() -> set[str]:
        answer = await _post(interop.synapse.client_url, dora.access_token,
                             "/_matrix/client/v3/keys/query",
                             {"device_keys": {first.user_id: []}})
        return set(answer["device_keys"].get(first.user_id, {}))

    assert await devices_seen_at_synapse() == {first.device_id}
    second = await nio_with_keys(a.matrix.base_url, interop.teacher_id(), tmp_path / "second",
                                 clients)

    async def until_seen(devices: set[str]) -> None:
        deadline = asyncio.get_running_loop().time() + 60
        while (seen := await devices_seen_at_synapse()) != devices:
            assert asyncio.get_running_loop().time() < deadline, seen
            await asyncio.sleep(0.5)

    await until_seen({first.device_id, second.device_id})
    await second.logout()
    await until_seen({first.device_id})
    await first.logout()
    await until_seen(set())
