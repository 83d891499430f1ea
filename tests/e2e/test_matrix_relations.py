"""Relations, threads, edits and reactions over raw HTTP against a running school
(spec: Client-Server API v1.12 /relations, /threads, bundled aggregations)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from tests.e2e import test_matrix_api
from tests.e2e.test_matrix_api import V3, Client, client

base = test_matrix_api.base
http = test_matrix_api.http

V1 = "/_matrix/client/v1"


async def room_of(teacher: Client, *members: Client) -> str:
    room = (await teacher.ok("POST", f"{V3}/createRoom", {"preset": "public_chat"}))["room_id"]
    for member in members:
        await member.ok("POST", f"{V3}/rooms/{room}/join")
    return room


async def send(sender: Client, room: str, content: dict[str, Any],
               event_type: str = "m.room.message") -> str:
    send.counter += 1  # type: ignore[attr-defined]
    sent = await sender.ok("PUT", f"{V3}/rooms/{room}/send/{event_type}/t{send.counter}",  # type: ignore[attr-defined]
                           content)
    return sent["event_id"]


send.counter = 0  # type: ignore[attr-defined]


def text(body: str, **relates: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if relates:
        content["m.relates_to"] = relates
    return content


def thread_reply(root: str, body: str) -> dict[str, Any]:
    return text(body, rel_type="m.thread", event_id=root, is_falling_back=True,
                **{"m.in_reply_to": {"event_id": root}})


def edit(original: str, body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": f"* {body}",
            "m.new_content": {"msgtype": "m.text", "body": body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original}}


def reaction(target: str, key: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}


async def test_threads_edits_and_reactions_are_bundled(http: aiohttp.ClientSession,
                                                       base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    room = await room_of(teacher, anna)
    root = await send(teacher, room, text("Wer kommt mit ins Museum?"))
    first = await send(anna, room, thread_reply(root, "Ich!"))
    latest = await send(teacher, room, thread_reply(root, "Super"))
    await send(teacher, room, edit(root, "Wer kommt mit ins Museum am Freitag?"))
    newest_edit = await send(teacher, room, edit(root, "Museum am Freitag: wer kommt?"))
    await send(anna, room, edit(root, "Anna may not edit the teacher's message"))
    await send(anna, room, reaction(root, "👍"), "m.reaction")
    await send(teacher, room, reaction(root, "👍"), "m.reaction")
    await send(anna, room, reaction(root, "🎉"), "m.reaction")

    for who in (anna, teacher):
        event = await who.ok("GET", f"{V3}/rooms/{room}/event/{root}")
        bundle = event["unsigned"]["m.relations"]
        assert bundle["m.thread"]["count"] == 2
        assert bundle["m.thread"]["latest_event"]["event_id"] == latest
        assert bundle["m.thread"]["current_user_participated"] is True
        # v1.7+: the original content stays, the newest valid edit is bundled whole.
        assert event["content"]["body"] == "Wer kommt mit ins Museum?"
        assert bundle["m.replace"]["event_id"] == newest_edit
        assert bundle["m.replace"]["content"]["m.new_content"]["body"] == \
            "Museum am Freitag: wer kommt?"
        assert {(c["key"], c["count"]) for c in bundle["m.annotation"]["chunk"]} == {
            ("👍", 2), ("🎉", 1)}
    # The same bundle in /messages.
    page = await anna.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b",
                                                                       "limit": "50"})
    [listed] = [e for e in page["chunk"] if e["event_id"] == root]
    assert listed["unsigned"]["m.relations"]["m.thread"]["count"] == 2

    # /relations with filters, newest first by default.
    data = await anna.ok("GET", f"{V1}/rooms/{room}/relations/{root}/m.thread")
    assert [e["event_id"] for e in data["chunk"]] == [latest, first]
    data = await anna.ok("GET", f"{V1}/rooms/{room}/relations/{root}/m.annotation/m.reaction")
    assert [e["content"]["m.relates_to"]["key"] for e in data["chunk"]] == ["🎉", "👍", "👍"]
    data = await anna.ok("GET", f"{V1}/rooms/{room}/relations/{root}")
    assert len(data["chunk"]) == 8 and "next_batch" not in data


async def test_relations_paginate_both_ways(http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    room = await room_of(teacher)
    root = await send(teacher, room, text("Hausaufgaben"))
    replies = [await send(teacher, room, thread_reply(root, f"Aufgabe {n}")) for n in range(5)]
    seen: list[str] = []
    params = {"limit": "2"}
    while True:
        data = await teacher.ok("GET", f"{V1}/rooms/{room}/relations/{root}", params=params)
        seen += [e["event_id"] for e in data["chunk"]]
        if "next_batch" not in data:
            break
        params = {"limit": "2", "from": data["next_batch"]}
    assert seen == replies[::-1]
    seen = []
    params = {"limit": "2", "dir": "f"}
    while True:
        data = await teacher.ok("GET", f"{V1}/rooms/{room}/relations/{root}", params=params)
        seen += [e["event_id"] for e in data["chunk"]]
        if "next_batch" not in data:
            break
        params = {"limit": "2", "dir": "f", "from": data["next_batch"]}
    assert seen == replies


async def test_recurse_follows_relations_of_relations(http: aiohttp.ClientSession,
                                                      base: str) -> None:
    teacher = await client(http, base, "lehrer")
    room = await room_of(teacher)
    root = await send(teacher, room, text("Elternabend"))
    reply = await send(teacher, room, thread_reply(root, "um 19 Uhr"))
    fixed = await send(teacher, room, edit(reply, "um 19:30 Uhr"))
    flat = await teacher.ok("GET", f"{V1}/rooms/{room}/relations/{root}")
    assert [e["event_id"] for e in flat["chunk"]] == [reply]
    deep = await teacher.ok("GET", f"{V1}/rooms/{room}/relations/{root}",
                            params={"recurse": "true"})
    assert [e["event_id"] for e in deep["chunk"]] == [fixed, reply]
    assert deep["recursion_depth"] >= 2


async def test_threads_list_all_and_participated(http: aiohttp.ClientSession,
                                                 base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    ben = await client(http, base, "ben")
    room = await room_of(teacher, anna, ben)
    old = await send(teacher, room, text("Thread 1"))
    new = await send(ben, room, text("Thread 2"))
    await send(anna, room, thread_reply(old, "Antwort"))
    await send(ben, room, thread_reply(new, "Antwort"))
    data = await anna.ok("GET", f"{V1}/rooms/{room}/threads")
    assert [e["event_id"] for e in data["chunk"]] == [new, old]
    assert data["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"] == 1
    mine = await anna.ok("GET", f"{V1}/rooms/{room}/threads",
                         params={"include": "participated"})
    assert [e["event_id"] for e in mine["chunk"]] == [old]
    # A reply moves a thread to the front; pages of one.
    await send(teacher, room, thread_reply(old, "Noch eine"))
    first = await anna.ok("GET", f"{V1}/rooms/{room}/threads", params={"limit": "1"})
    assert [e["event_id"] for e in first["chunk"]] == [old]
    second = await anna.ok("GET", f"{V1}/rooms/{room}/threads",
                           params={"limit": "1", "from": first["next_batch"]})
    assert [e["event_id"] for e in second["chunk"]] == [new]
    assert "next_batch" not in second


async def test_redacting_a_reaction_removes_it_from_the_bundle(http: aiohttp.ClientSession,
                                                                base: str) -> None:
    teacher = await client(http, base, "lehrer")
    room = await room_of(teacher)
    root = await send(teacher, room, text("Ausflug"))
    liked = await send(teacher, room, reaction(root, "👍"), "m.reaction")
    event = await teacher.ok("GET", f"{V3}/rooms/{room}/event/{root}")
    assert event["unsigned"]["m.relations"]["m.annotation"]["chunk"][0]["count"] == 1
    await teacher.ok("PUT", f"{V3}/rooms/{room}/redact/{liked}/r1", {})
    event = await teacher.ok("GET", f"{V3}/rooms/{room}/event/{root}")
    assert "m.relations" not in event["unsigned"]
    data = await teacher.ok("GET", f"{V1}/rooms/{room}/relations/{root}")
    assert data["chunk"] == []


async def test_relations_are_for_members_only_and_bad_input_is_refused(
        http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    carl = await client(http, base, "carl")
    room = await (room_of(teacher))
    root = await send(teacher, room, text("intern"))
    await send(teacher, room, thread_reply(root, "auch intern"))
    status, data = await carl.call("GET", f"{V1}/rooms/{room}/relations/{root}")
    assert status == 403 and data["errcode"] == "M_FORBIDDEN"
    status, data = await carl.call("GET", f"{V1}/rooms/{room}/threads")
    assert status == 403 and data["errcode"] == "M_FORBIDDEN"
    cases = [
        (f"{V1}/rooms/{room}/relations/{quote('$nope')}", {}, 404, "M_NOT_FOUND"),
        (f"{V1}/rooms/{room}/relations/{root}", {"dir": "x"}, 400, "M_INVALID_PARAM"),
        (f"{V1}/rooms/{room}/relations/{root}", {"limit": "abc"}, 400, "M_INVALID_PARAM"),
        (f"{V1}/rooms/{room}/relations/{root}", {"limit": "9" * 30}, 400, "M_INVALID_PARAM"),
        (f"{V1}/rooms/{room}/relations/{root}", {"from": "garbage"}, 400, "M_INVALID_PARAM"),
        (f"{V1}/rooms/{room}/relations/{root}", {"recurse": "maybe"}, 400, "M_INVALID_PARAM"),
        (f"{V1}/rooms/{room}/threads", {"include": "everything"}, 400, "M_INVALID_PARAM"),
        (f"{V1}/rooms/{room}/threads", {"from": "t--1"}, 400, "M_INVALID_PARAM"),
        (f"{V1}/rooms/{quote('!unknown:schule.test')}/threads", {}, 404, "M_NOT_FOUND"),
    ]
    for path, params, want_status, errcode in cases:
        status, data = await teacher.call("GET", path, params=params)
        assert (status, data.get("errcode")) == (want_status, errcode), (path, params, data)
    # Limits beyond the maximum are lowered, not refused.
    data = await teacher.ok("GET", f"{V1}/rooms/{room}/relations/{root}",
                            params={"limit": "100000"})
    assert len(data["chunk"]) == 1


async def test_a_second_identical_reaction_is_refused(http: aiohttp.ClientSession,
                                                      base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    room = await room_of(teacher, anna)
    root = await send(teacher, room, text("Abstimmung"))
    path = f"{V3}/rooms/{room}/send/m.reaction"
    first = (await anna.ok("PUT", f"{path}/like1", reaction(root, "👍")))["event_id"]
    # A retried transaction is the same reaction, not a second one.
    again = (await anna.ok("PUT", f"{path}/like1", reaction(root, "👍")))["event_id"]
    assert again == first
    status, data = await anna.call("PUT", f"{path}/like2", reaction(root, "👍"))
    assert (status, data["errcode"]) == (400, "M_DUPLICATE_ANNOTATION")
    await anna.ok("PUT", f"{path}/party", reaction(root, "🎉"))  # another key is fine
    await teacher.ok("PUT", f"{path}/like3", reaction(root, "👍"))  # another sender too
    await anna.ok("PUT", f"{V3}/rooms/{room}/redact/{first}/undo", {})
    await anna.ok("PUT", f"{path}/like4", reaction(root, "👍"))  # after the redaction
    event = await anna.ok("GET", f"{V3}/rooms/{room}/event/{root}")
    counts = {c["key"]: c["count"] for c in event["unsigned"]["m.relations"]["m.annotation"]
              ["chunk"]}
    assert counts == {"👍": 2, "🎉": 1}


async def test_sliding_sync_timelines_carry_bundles(
        http: aiohttp.ClientSession, base: str) -> None:
    from tests.e2e.test_matrix_sliding_sync import ELEMENT_X_STATE, SS

    teacher = await client(http, base, "lehrer")
    room = await room_of(teacher)
    root = await send(teacher, room, text("Frage"))
    reply = await send(teacher, room, thread_reply(root, "Antwort"))
    body = {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 50,
                              "required_state": ELEMENT_X_STATE}}}
    data = await teacher.ok("POST", SS, body, params={"timeout": "0"})
    timeline = data["rooms"][room]["timeline"]
    assert [e["event_id"] for e in timeline[-2:]] == [root, reply]
    [listed] = [e for e in timeline if e["event_id"] == root]
    assert listed["unsigned"]["m.relations"]["m.thread"]["latest_event"]["event_id"] == reply
