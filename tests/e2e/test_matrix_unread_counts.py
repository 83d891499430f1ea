"""Unread notification and highlight counts over raw HTTP against a running school
(spec: Client-Server API v1.12 8.1 ``unread_notifications``, 11.6.2.3 threaded
receipts and ``unread_thread_notifications``, 13.13 push rules; MSC4186 room
counts): they rise with messages and mentions as the push rules say and drop
with read receipts, the same in /v3/sync, sliding sync and /notifications."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.e2e import test_matrix_api
from tests.e2e.test_matrix_api import V3, Client, client
from tests.e2e.test_matrix_relations import room_of, send, text, thread_reply

base = test_matrix_api.base
http = test_matrix_api.http

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
PER_THREAD = json.dumps({"room": {"timeline": {"unread_thread_notifications": True}}})


async def counts(who: Client, room: str, since: str | None = None,
                 params: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    query = {"timeout": "0", **(params or {})}
    if since is not None:
        query["since"] = since
    data = await who.ok("GET", f"{V3}/sync", params=query)
    joined = data["rooms"]["join"].get(room, {})
    return joined, data["next_batch"]


def unread(room: dict[str, Any]) -> tuple[int, int]:
    c = room["unread_notifications"]
    return c["notification_count"], c["highlight_count"]


async def test_messages_and_mentions_count_until_read(http: aiohttp.ClientSession,
                                                      base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    ben = await client(http, base, "ben")
    room = await room_of(teacher, anna, ben)
    _, since = await counts(anna, room)
    await send(teacher, room, text("Morgen Wandertag"))
    await send(ben, room, text("Cool"))
    await send(anna, room, text("Ich bringe Kuchen"))  # her own: no notification
    joined, since = await counts(anna, room, since)
    assert unread(joined) == (2, 0)
    # A mention by m.mentions, and one by display name (the legacy rule) both highlight.
    await send(teacher, room, {**text("Bitte melden"), "m.mentions": {"user_ids": [
        anna.user_id]}})
    mention = await send(ben, room, text("Anna, kommst du?"))
    joined, since = await counts(anna, room, since)
    assert unread(joined) == (4, 2)
    # Ben's counts are his own: the mentions of Anna do not highlight for him.
    ben_room, _ = await counts(ben, room)
    assert unread(ben_room) == (3, 0)
    # Notices do not notify (.m.rule.suppress_notices), nor edits or reactions.
    await send(teacher, room, {"msgtype": "m.notice", "body": "Bot"})
    joined, since = await counts(anna, room, since)
    assert unread(joined) == (4, 2)
    # A receipt on the mention reads everything up to it.
    await anna.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{mention}", {})
    joined, since = await counts(anna, room, since)
    assert unread(joined) == (0, 0)
    later = await send(teacher, room, text("Noch etwas"))
    joined, since = await counts(anna, room, since)
    assert unread(joined) == (1, 0)
    # m.read.private reads as well, and an initial sync says the same.
    await anna.ok("POST", f"{V3}/rooms/{room}/receipt/m.read.private/{later}", {})
    joined, since = await counts(anna, room, since)
    assert unread(joined) == (0, 0)
    fresh, _ = await counts(anna, room)
    assert unread(fresh) == (0, 0)
    fresh_ben, _ = await counts(ben, room)
    assert unread(fresh_ben) == (4, 0)


async def test_threads_count_apart_and_threaded_receipts_read_one_thread(
        http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    room = await room_of(teacher, anna)
    root = await send(teacher, room, text("Frage zur Hausaufgabe"))
    reply = await send(teacher, room, thread_reply(root, "Seite 12"))
    await send(teacher, room, thread_reply(root, "und 13"))
    main = await send(teacher, room, text("Sonst noch was?"))
    params = {"filter": PER_THREAD}
    joined, since = await counts(anna, room, params=params)
    # Two members: the one-to-one rule notifies every message.
    assert unread(joined) == (2, 0)
    assert joined["unread_thread_notifications"] == {
        root: {"notification_count": 2, "highlight_count": 0}}
    plain, _ = await counts(anna, room)
    assert unread(plain) == (4, 0)
    assert "unread_thread_notifications" not in plain
    # A receipt in the thread reads the thread only, up to its event.
    await anna.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{reply}",
                  {"thread_id": root})
    joined, since = await counts(anna, room, since, params)
    assert unread(joined) == (2, 0)
    assert joined["unread_thread_notifications"] == {
        root: {"notification_count": 1, "highlight_count": 0}}
    await anna.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{main}", {"thread_id": "main"})
    joined, since = await counts(anna, room, since, params)
    assert unread(joined) == (0, 0)
    assert joined["unread_thread_notifications"] == {
        root: {"notification_count": 1, "highlight_count": 0}}
    # An unthreaded receipt reads everything before it, threads included.
    await anna.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{main}", {})
    joined, since = await counts(anna, room, since, params)
    assert unread(joined) == (0, 0)
    assert joined["unread_thread_notifications"] == {}


async def test_sliding_sync_counts_follow_messages_and_receipts(
        http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    ben = await client(http, base, "ben")
    room = await room_of(teacher, anna, ben)
    await send(teacher, room, text("Hallo"))
    body = {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 5,
                              "required_state": []}}}
    data = await anna.ok("POST", SS, body, params={"timeout": "0"})
    got = data["rooms"][room]
    assert (got["notification_count"], got["highlight_count"]) == (1, 0)
    pos = data["pos"]
    last = await send(ben, room, text("anna: Mathe?"))
    data = await anna.ok("POST", SS, body, params={"timeout": "0", "pos": pos})
    got = data["rooms"][room]
    assert (got["notification_count"], got["highlight_count"]) == (2, 1)
    pos = data["pos"]
    # The receipt alone brings the room back with its new counts.
    await anna.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{last}", {})
    data = await anna.ok("POST", SS, body, params={"timeout": "1000", "pos": pos})
    got = data["rooms"][room]
    assert (got["notification_count"], got["highlight_count"]) == (0, 0)
    assert "timeline" not in got


async def test_muted_room_and_notifications_list_use_the_same_rules(
        http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    ben = await client(http, base, "ben")
    room = await room_of(teacher, anna, ben)
    _, since = await counts(anna, room)
    # Element's "mute": an override rule on the room with no actions.
    await anna.ok("PUT", f"{V3}/pushrules/global/override/{room}", {
        "actions": [], "conditions": [{"kind": "event_match", "key": "room_id",
                                       "pattern": room}]})
    await send(teacher, room, text("Stumm"))
    joined, since = await counts(anna, room, since)
    assert unread(joined) == (0, 0)
    assert (await anna.ok("GET", f"{V3}/notifications"))["notifications"] == []
    await anna.ok("DELETE", f"{V3}/pushrules/global/override/{room}")
    # A keyword of her own highlights (a content rule).
    await anna.ok("PUT", f"{V3}/pushrules/global/content/kuchen", {
        "pattern": "kuchen", "actions": ["notify", {"set_tweak": "highlight"}]})
    keyword = await send(ben, room, text("Wer bringt Kuchen mit?"))
    plain = await send(ben, room, text("Danke"))
    joined, since = await counts(anna, room, since)
    assert unread(joined) == (2, 1)
    listed = (await anna.ok("GET", f"{V3}/notifications"))["notifications"]
    assert [(n["event"]["event_id"], n["read"]) for n in listed] == [
        (plain, False), (keyword, False)]
    assert listed[1]["actions"][1] == {"set_tweak": "highlight", "value": True}
    await anna.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{keyword}", {})
    listed = (await anna.ok("GET", f"{V3}/notifications"))["notifications"]
    assert [(n["event"]["event_id"], n["read"]) for n in listed] == [
        (plain, False), (keyword, True)]
    # Another user's receipt reads nothing of hers.
    await ben.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{plain}", {})
    joined, since = await counts(anna, room, since)
    assert unread(joined) == (1, 0)


async def test_invites_notify_the_invitee(http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    carl = await client(http, base, "carl")
    room = (await teacher.ok("POST", f"{V3}/createRoom", {"preset": "private_chat"}))["room_id"]
    await teacher.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": carl.user_id})
    listed = (await carl.ok("GET", f"{V3}/notifications"))["notifications"]
    assert [n["event"]["type"] for n in listed] == ["m.room.member"]
    await carl.ok("POST", f"{V3}/rooms/{room}/join")
    await send(teacher, room, text("Willkommen"))
    joined, _ = await counts(carl, room)
    # What came before her join is not unread for her: the welcome only (one-to-one).
    assert unread(joined) == (1, 0)
