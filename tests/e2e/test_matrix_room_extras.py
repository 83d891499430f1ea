"""Search, notifications, reports, space hierarchies and jumping to a date, over raw
HTTP against a running school (spec: Client-Server API v1.12/v1.13)."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from tests.e2e import test_matrix_api
from tests.e2e.test_matrix_api import V3, Client, client, mxid
from tests.e2e.test_matrix_relations import room_of, send, text

base = test_matrix_api.base
http = test_matrix_api.http

V1 = "/_matrix/client/v1"


def search_body(term: str, **criteria: Any) -> dict[str, Any]:
    return {"search_categories": {"room_events": {"search_term": term, **criteria}}}


async def found(who: Client, term: str, **criteria: Any) -> list[str]:
    data = await who.ok("POST", f"{V3}/search", search_body(term, **criteria))
    return [r["result"]["content"]["body"] for r in data["search_categories"]["room_events"]
            ["results"]]


async def test_search_finds_words_in_the_users_rooms_only(http: aiohttp.ClientSession,
                                                          base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    ben = await client(http, base, "ben")
    shared = await room_of(teacher, anna)
    private = await room_of(teacher, ben)
    await send(teacher, shared, text("Die Klassenfahrt geht nach Berlin"))
    await send(anna, shared, text("Berlin im Mai? Toll"))
    await send(teacher, shared, text("100% sicher_nicht"))
    await send(teacher, private, text("Berlin: Bens Note"))
    assert await found(anna, "berlin") == ["Berlin im Mai? Toll",
                                           "Die Klassenfahrt geht nach Berlin"]
    assert await found(anna, "BERLIN klassenfahrt") == ["Die Klassenfahrt geht nach Berlin"]
    assert await found(anna, "100%") == ["100% sicher_nicht"]
    assert await found(anna, "sicher_") == ["100% sicher_nicht"]
    assert await found(anna, "%") == ["100% sicher_nicht"]  # a wildcard matches itself only
    assert await found(anna, "Paris") == []
    assert await found(teacher, "berlin", filter={"rooms": [private]}) == ["Berlin: Bens Note"]
    assert await found(anna, "berlin", filter={"rooms": [private]}) == []
    # After leaving, what came later stays hidden.
    await anna.ok("POST", f"{V3}/rooms/{shared}/leave")
    await send(teacher, shared, text("Berlin: neue Abfahrtszeit"))
    assert "Berlin: neue Abfahrtszeit" not in await found(anna, "berlin")
    assert "Berlin im Mai? Toll" in await found(anna, "berlin")


async def test_search_pages_with_next_batch_and_context(http: aiohttp.ClientSession,
                                                        base: str) -> None:
    teacher = await client(http, base, "lehrer")
    room = await room_of(teacher)
    for n in range(5):
        await send(teacher, room, text(f"Vokabeltest {n}"))
        await send(teacher, room, text(f"Zwischenruf {n}"))
    seen: list[str] = []
    batch = None
    for _ in range(10):
        path = f"{V3}/search" + (f"?next_batch={quote(batch)}" if batch else "")
        data = await teacher.ok("POST", path, search_body(
            "vokabeltest", filter={"limit": 2},
            event_context={"before_limit": 1, "after_limit": 1}))
        events = data["search_categories"]["room_events"]
        for result in events["results"]:
            seen.append(result["result"]["content"]["body"])
            ctx = result["context"]
            assert len(ctx["events_before"]) == 1 and len(ctx["events_after"]) <= 1
        batch = events.get("next_batch")
        if batch is None:
            break
    assert seen == [f"Vokabeltest {n}" for n in reversed(range(5))]


async def test_search_refuses_bad_requests(http: aiohttp.ClientSession, base: str) -> None:
    anna = await client(http, base, "anna")
    for body in ({}, {"search_categories": []}, search_body(5),
                 search_body("x", keys=["content.secret"]), search_body("x", order_by="size"),
                 search_body("x", filter={"limit": "ten"}), search_body("x", filter=[]),
                 search_body("x", filter={"rooms": "!a:b"}), search_body("x", event_context=1),
                 search_body("x", event_context={"before_limit": True})):
        status, data = await anna.call("POST", f"{V3}/search", body)
        assert (status, data["errcode"]) == (400, "M_BAD_JSON"), body
    status, data = await anna.call("POST", f"{V3}/search?next_batch=zzz", search_body("x"))
    assert (status, data["errcode"]) == (400, "M_INVALID_PARAM")
    assert (await anna.ok("POST", f"{V3}/search", {"search_categories": {}})) == {
        "search_categories": {}}
    status, data = await Client(http, base).call("POST", f"{V3}/search", search_body("x"))
    assert (status, data["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_notifications_list_messages_of_others_with_read_state(
        http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    room = await room_of(teacher, anna)
    first = await send(teacher, room, text("Erinnerung: Sportzeug"))
    await send(anna, room, text("Danke"))  # her own: no notification
    mention = await send(teacher, room, text("anna, bitte melden"))
    await anna.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{first}", {})
    data = await anna.ok("GET", f"{V3}/notifications")
    listed = [(n["event"]["event_id"], n["read"], n["room_id"]) for n in data["notifications"]]
    assert listed == [(mention, False, room), (first, True, room)]
    assert data["notifications"][0]["actions"][1] == {"set_tweak": "highlight", "value": True}
    only = await anna.ok("GET", f"{V3}/notifications", params={"only": "highlight"})
    assert [n["event"]["event_id"] for n in only["notifications"]] == [mention]
    page = await anna.ok("GET", f"{V3}/notifications", params={"limit": "1"})
    assert [n["event"]["event_id"] for n in page["notifications"]] == [mention]
    rest = await anna.ok("GET", f"{V3}/notifications", params={"limit": "1",
                                                                "from": page["next_token"]})
    assert [n["event"]["event_id"] for n in rest["notifications"]] == [first]
    for params in ({"only": "everything"}, {"from": "nonsense"}, {"limit": "x"}):
        status, body = await anna.call("GET", f"{V3}/notifications", params=params)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), params


async def test_reports_are_stored_for_what_the_reporter_can_see(
        http: aiohttp.ClientSession, base: str, running_school: Any) -> None:
    from sqlalchemy import select

    from messenger.storage.tables import ReportRow

    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    carl = await client(http, base, "carl")
    room = await room_of(teacher, anna)
    rude = await send(teacher, room, text("etwas Gemeines"))
    await anna.ok("POST", f"{V3}/rooms/{room}/report/{rude}", {"reason": "gemein",
                                                                "score": -100})
    await anna.ok("POST", f"{V3}/rooms/{room}/report", {"reason": "ganzer Raum"})
    await anna.ok("POST", f"{V3}/rooms/{room}/report/{rude}", {})
    for who, path, body, want in (
            (carl, f"{V3}/rooms/{room}/report/{rude}", {}, (404, "M_NOT_FOUND")),
            (carl, f"{V3}/rooms/{room}/report", {}, (404, "M_NOT_FOUND")),
            (anna, f"{V3}/rooms/{room}/report/{quote('$nichts')}", {}, (404, "M_NOT_FOUND")),
            (anna, f"{V3}/rooms/{room}/report/{rude}", {"score": 5}, (400, "M_INVALID_PARAM")),
            (anna, f"{V3}/rooms/{room}/report/{rude}", {"score": "x"}, (400, "M_BAD_JSON")),
            (anna, f"{V3}/rooms/{room}/report/{rude}", {"reason": 1}, (400, "M_BAD_JSON")),
            (anna, f"{V3}/rooms/{room}/report", {"reason": "x" * 3000},
             (400, "M_INVALID_PARAM"))):
        status, data = await who.call("POST", path, body)
        assert (status, data["errcode"]) == want, (path, body, data)
    async with running_school.db.read() as session:
        rows = list(await session.scalars(select(ReportRow).order_by(ReportRow.id)))
    assert [(r.room_id, r.event_id, r.reporter, r.reason, r.score) for r in rows] == [
        (room, rude, mxid("anna"), "gemein", -100), (room, None, mxid("anna"), "ganzer Raum",
                                                    None),
        (room, rude, mxid("anna"), None, None)]


async def make_space(teacher: Client, children: list[str], **extra: Any) -> str:
    space = (await teacher.ok("POST", f"{V3}/createRoom", {
        "preset": "public_chat", "name": "Schule", "creation_content": {"type": "m.space"},
        **extra}))["room_id"]
    for n, child in enumerate(children):
        await teacher.ok("PUT", f"{V3}/rooms/{space}/state/m.space.child/{child}",
                         {"via": ["schule.test"], "order": f"{n:02d}"})
    return space


async def test_hierarchy_walks_the_space_the_user_may_see(http: aiohttp.ClientSession,
                                                          base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    open_room = (await teacher.ok("POST", f"{V3}/createRoom", {
        "preset": "public_chat", "name": "5a"}))["room_id"]
    closed = (await teacher.ok("POST", f"{V3}/createRoom", {
        "preset": "private_chat", "name": "Lehrerzimmer"}))["room_id"]
    sub = await make_space(teacher, [open_room])
    space = await make_space(teacher, [sub, closed, open_room])
    await anna.ok("POST", f"{V3}/rooms/{space}/join")
    data = await anna.ok("GET", f"{V1}/rooms/{space}/hierarchy")
    ids = [r["room_id"] for r in data["rooms"]]
    assert ids == [space, sub, open_room]  # breadth-first, each once, closed room hidden
    root = data["rooms"][0]
    assert root["room_type"] == "m.space" and root["name"] == "Schule"
    assert [c["state_key"] for c in root["children_state"]] == [sub, closed, open_room]
    assert root["num_joined_members"] == 2 and root["join_rule"] == "public"
    # The teacher sees the closed room too; pages of one.
    seen, batch = [], None
    for _ in range(10):
        params = {"limit": "1", **({"from": batch} if batch else {})}
        page = await teacher.ok("GET", f"{V1}/rooms/{space}/hierarchy", params=params)
        seen += [r["room_id"] for r in page["rooms"]]
        batch = page.get("next_batch")
        if batch is None:
            break
    assert seen == [space, sub, closed, open_room]
    depth0 = await teacher.ok("GET", f"{V1}/rooms/{space}/hierarchy", params={"max_depth": "0"})
    assert [r["room_id"] for r in depth0["rooms"]] == [space]
    carl = await client(http, base, "carl")
    status, body = await carl.call("GET", f"{V1}/rooms/{closed}/hierarchy")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    for params, want in (({"from": "x1"}, (400, "M_INVALID_PARAM")),
                         ({"limit": "many"}, (400, "M_INVALID_PARAM")),
                         ({"suggested_only": "ja"}, (400, "M_INVALID_PARAM"))):
        status, body = await anna.call("GET", f"{V1}/rooms/{space}/hierarchy", params=params)
        assert (status, body["errcode"]) == want, params
    status, body = await anna.call("GET", f"{V1}/rooms/{quote('!gibts:schule.test')}/hierarchy")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_timestamp_to_event_finds_the_nearest_visible_event(
        http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    room = await room_of(teacher, anna)
    early = await send(teacher, room, text("früh"))
    await asyncio.sleep(0.05)
    middle_ts = int(time.time() * 1000)
    await asyncio.sleep(0.05)
    late = await send(teacher, room, text("spät"))
    path = f"{V1}/rooms/{room}/timestamp_to_event"
    forward = await anna.ok("GET", path, params={"ts": str(middle_ts), "dir": "f"})
    backward = await anna.ok("GET", path, params={"ts": str(middle_ts), "dir": "b"})
    assert (forward["event_id"], backward["event_id"]) == (late, early)
    assert forward["origin_server_ts"] >= middle_ts >= backward["origin_server_ts"]
    status, data = await anna.call("GET", path, params={"ts": str(2**62), "dir": "f"})
    assert (status, data["errcode"]) == (404, "M_NOT_FOUND")
    for params, want in (({"dir": "f"}, (400, "M_MISSING_PARAM")),
                         ({"ts": "1"}, (400, "M_MISSING_PARAM")),
                         ({"ts": "soon", "dir": "f"}, (400, "M_INVALID_PARAM")),
                         ({"ts": "9" * 40, "dir": "f"}, (400, "M_INVALID_PARAM")),
                         ({"ts": "1", "dir": "up"}, (400, "M_INVALID_PARAM"))):
        status, data = await anna.call("GET", path, params=params)
        assert (status, data["errcode"]) == want, params
    carl = await client(http, base, "carl")
    status, data = await carl.call("GET", path, params={"ts": "1", "dir": "f"})
    assert (status, data["errcode"]) == (403, "M_FORBIDDEN")


async def test_search_hides_history_from_before_joining_where_the_room_says_so(
        http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    ben = await client(http, base, "ben")
    closed = await room_of(teacher)
    await teacher.ok("PUT", f"{V3}/rooms/{closed}/state/m.room.history_visibility/",
                     {"history_visibility": "joined"})
    await send(teacher, closed, text("Geheimplan vor Annas Zeit"))
    shared = await room_of(teacher)
    await send(teacher, shared, text("Geheimplan für alle"))
    await anna.ok("POST", f"{V3}/rooms/{closed}/join")
    await ben.ok("POST", f"{V3}/rooms/{shared}/join")
    await send(teacher, closed, text("Geheimplan ab jetzt"))
    assert await found(anna, "geheimplan") == ["Geheimplan ab jetzt"]
    assert await found(ben, "geheimplan") == ["Geheimplan für alle"]  # shared: all of it
    assert set(await found(teacher, "geheimplan")) == {
        "Geheimplan vor Annas Zeit", "Geheimplan für alle", "Geheimplan ab jetzt"}
