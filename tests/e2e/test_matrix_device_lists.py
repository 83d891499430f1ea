"""Device list changes from memberships over raw HTTP (spec: Client-Server API
11.12.5.1 "Tracking the device list for a user"): a user who no longer shares any
room is in ``device_lists.left``, one who comes to share a room again in
``changed``, in /v3/sync and in sliding sync's e2ee extension."""

from __future__ import annotations

import aiohttp

from tests.e2e import test_matrix_api
from tests.e2e.test_matrix_api import V3, Client, client
from tests.e2e.test_matrix_relations import room_of

base = test_matrix_api.base
http = test_matrix_api.http

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


async def device_lists(who: Client, since: str) -> tuple[dict[str, list[str]], str]:
    data = await who.ok("GET", f"{V3}/sync", params={"since": since, "timeout": "0"})
    return data["device_lists"], data["next_batch"]


async def test_left_when_no_room_is_shared_any_more(http: aiohttp.ClientSession,
                                                    base: str) -> None:
    anna = await client(http, base, "anna")
    ben = await client(http, base, "ben")
    carl = await client(http, base, "carl")
    first = await room_of(anna, ben, carl)
    second = await room_of(anna, carl)
    since = (await anna.ok("GET", f"{V3}/sync"))["next_batch"]
    body = {"extensions": {"e2ee": {"enabled": True}},
            "lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1}}}
    pos = (await anna.ok("POST", SS, body, params={"timeout": "0"}))["pos"]
    # Carl leaves one room but still shares the other: not left.
    await carl.ok("POST", f"{V3}/rooms/{first}/leave")
    lists, since = await device_lists(anna, since)
    assert lists["left"] == []
    # Ben leaves the only room he shared with Anna: left.
    await ben.ok("POST", f"{V3}/rooms/{first}/leave")
    lists, since = await device_lists(anna, since)
    assert lists["left"] == [ben.user_id]
    sliding = await anna.ok("POST", SS, body, params={"timeout": "0", "pos": pos})
    assert sliding["extensions"]["e2ee"]["device_lists"]["left"] == [ben.user_id]
    pos = sliding["pos"]
    # He comes back: his devices are news again.
    await ben.ok("POST", f"{V3}/rooms/{first}/join")
    lists, since = await device_lists(anna, since)
    assert ben.user_id in lists["changed"] and lists["left"] == []
    sliding = await anna.ok("POST", SS, body, params={"timeout": "0", "pos": pos})
    assert ben.user_id in sliding["extensions"]["e2ee"]["device_lists"]["changed"]
    # Anna leaves the second room: Carl shares none with her any more.
    await anna.ok("POST", f"{V3}/rooms/{second}/leave")
    lists, since = await device_lists(anna, since)
    assert lists["left"] == [carl.user_id]
