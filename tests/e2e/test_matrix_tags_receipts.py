"""Room tags and threaded read receipts over raw HTTP against a running school
(spec: Client-Server API v1.12 "Room Tagging", "Threaded read receipts")."""

from __future__ import annotations

import aiohttp

from tests.e2e import test_matrix_api
from tests.e2e.test_matrix_api import V3, client, mxid
from tests.e2e.test_matrix_relations import room_of, send, text, thread_reply

base = test_matrix_api.base
http = test_matrix_api.http


async def test_tags_are_set_listed_removed_and_synced(http: aiohttp.ClientSession,
                                                      base: str) -> None:
    anna = await client(http, base, "anna")
    room = await room_of(anna)
    tags = f"{V3}/user/{mxid('anna')}/rooms/{room}/tags"
    first = await anna.ok("GET", f"{V3}/sync")
    assert (await anna.ok("GET", tags)) == {"tags": {}}
    await anna.ok("PUT", f"{tags}/m.favourite", {"order": 0.25})
    await anna.ok("PUT", f"{tags}/u.Hausaufgaben", {})
    assert (await anna.ok("GET", tags))["tags"] == {"m.favourite": {"order": 0.25},
                                                    "u.Hausaufgaben": {}}
    synced = await anna.ok("GET", f"{V3}/sync", params={"since": first["next_batch"],
                                                         "timeout": "0"})
    data = synced["rooms"]["join"][room]["account_data"]["events"]
    assert {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.25},
                                                  "u.Hausaufgaben": {}}}} in data
    await anna.ok("DELETE", f"{tags}/u.Hausaufgaben")
    await anna.ok("DELETE", f"{tags}/u.never-set")  # idempotent
    assert (await anna.ok("GET", tags))["tags"] == {"m.favourite": {"order": 0.25}}
    # The same document through the account data endpoint.
    raw = await anna.ok("GET", f"{V3}/user/{mxid('anna')}/rooms/{room}/account_data/m.tag")
    assert raw == {"tags": {"m.favourite": {"order": 0.25}}}


async def test_tags_are_private_and_checked(http: aiohttp.ClientSession, base: str) -> None:
    anna = await client(http, base, "anna")
    ben = await client(http, base, "ben")
    room = await room_of(anna, ben)
    annas = f"{V3}/user/{mxid('anna')}/rooms/{room}/tags"
    await anna.ok("PUT", f"{annas}/m.lowpriority", {})
    for method, path, body in (("GET", annas, None), ("PUT", f"{annas}/x", {}),
                               ("DELETE", f"{annas}/m.lowpriority", None)):
        status, data = await ben.call(method, path, body)
        assert (status, data["errcode"]) == (403, "M_FORBIDDEN")
    for body in ({"order": "first"}, {"order": True}, {"order": [1]}):
        status, data = await anna.call("PUT", f"{annas}/m.favourite", body)
        assert (status, data["errcode"]) == (400, "M_BAD_JSON"), body
    status, data = await anna.call("PUT", f"{annas}/m.favourite", raw=b"[1, 2]")
    assert (status, data["errcode"]) == (400, "M_BAD_JSON")
    status, data = await anna.call("PUT", f"{annas}/m.favourite", raw=b"{nope")
    assert (status, data["errcode"]) == (400, "M_NOT_JSON")
    status, data = await anna.call("PUT", f"{annas}/{'t' * 300}", {})
    assert (status, data["errcode"]) == (400, "M_INVALID_PARAM")
    status, data = await anna.call("PUT", f"{annas}/big", {"order": 1, "x": "y" * 70_000})
    assert status in (413,) and data["errcode"] == "M_TOO_LARGE"
    assert (await anna.ok("GET", annas))["tags"] == {"m.lowpriority": {}}


async def test_threaded_receipts_reach_the_other_member(http: aiohttp.ClientSession,
                                                        base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    room = await room_of(teacher, anna)
    root = await send(teacher, room, text("Frage"))
    reply = await send(teacher, room, thread_reply(root, "Antwort"))
    since = (await teacher.ok("GET", f"{V3}/sync"))["next_batch"]
    await anna.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{reply}", {"thread_id": root})
    await anna.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{root}", {"thread_id": "main"})
    synced = await teacher.ok("GET", f"{V3}/sync", params={"since": since, "timeout": "5000"})
    receipts = {}
    for event in synced["rooms"]["join"][room]["ephemeral"]["events"]:
        if event["type"] == "m.receipt":
            for event_id, kinds in event["content"].items():
                receipts[event_id] = kinds["m.read"][mxid("anna")].get("thread_id")
    if len(receipts) < 2:  # the second receipt may come in the next poll
        synced = await teacher.ok("GET", f"{V3}/sync", params={
            "since": synced["next_batch"], "timeout": "5000"})
        for event in synced["rooms"]["join"][room]["ephemeral"]["events"]:
            for event_id, kinds in event["content"].items():
                receipts[event_id] = kinds["m.read"][mxid("anna")].get("thread_id")
    assert receipts == {reply: root, root: "main"}
    for body, receipt_type in (({"thread_id": "nonsense"}, "m.read"),
                               ({"thread_id": root}, "m.fully_read")):
        status, data = await anna.call("POST", f"{V3}/rooms/{room}/receipt/{receipt_type}/{root}",
                                       body)
        assert (status, data["errcode"]) == (400, "M_INVALID_PARAM"), body
    status, data = await anna.call("POST", f"{V3}/rooms/{room}/receipt/m.read/{root}",
                                   {"thread_id": 5})
    assert (status, data["errcode"]) == (400, "M_BAD_JSON")


async def test_sync_has_per_thread_counts_when_the_filter_asks(http: aiohttp.ClientSession,
                                                               base: str) -> None:
    import json

    anna = await client(http, base, "anna")
    room = await room_of(anna)
    plain = await anna.ok("GET", f"{V3}/sync")
    assert "unread_thread_notifications" not in plain["rooms"]["join"][room]
    wanted = json.dumps({"room": {"timeline": {"unread_thread_notifications": True}}})
    asked = await anna.ok("GET", f"{V3}/sync", params={"filter": wanted})
    assert asked["rooms"]["join"][room]["unread_thread_notifications"] == {}
    bad = json.dumps({"room": {"timeline": {"unread_thread_notifications": "yes"}}})
    status, data = await anna.call("GET", f"{V3}/sync", params={"filter": bad})
    assert (status, data["errcode"]) == (400, "M_INVALID_PARAM")
