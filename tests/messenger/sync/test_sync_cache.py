"""/sync served from the in-memory cache (messenger.sync.cache) against a real
database: every response built from memory must equal the one the database
path builds for the same token, and whatever the cache lacks (old tokens,
membership changes, limited timelines, other writers) must fall back to it
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conf.app import School
from messenger import jsonenc
from messenger.identity import Requester
from messenger.rooms.policy import ChatPolicy
from messenger.rooms.presets import CreateRoomRequest
from messenger.rooms.service import RoomService
from messenger.server import MatrixServer
from messenger.sync import cache as cache_module
from messenger.sync import v3
from messenger.sync.builder import SyncBuilder, SyncRequest
from messenger.sync.filters import SyncFilter
from messenger.sync.notifier import Notifier
from messenger.sync.tokens import SyncToken
from tests.support.matrix_in_process import new_requester

DOMAIN = "schule.test"


def _plain(response: dict[str, Any]) -> dict[str, Any]:
    """The response as a client receives it, without the ever-changing ages."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "age"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(json.loads(jsonenc.dumps(response)))


class Syncs:
    """Incremental syncs through the cache, each checked against the database path."""

    def __init__(self, server: MatrixServer) -> None:
        self.server = server
        self.database = SyncBuilder(server.sync.db, Notifier(), server.limits, server.typing,
                                    unread=server.unread)
        self.fallbacks = 0

    async def initial(self, who: Requester) -> str:
        response = await self.server.sync.sync(who, SyncRequest(None, 0, False, SyncFilter()))
        return response["next_batch"]

    async def since(self, who: Requester, token: str,
                    sync_filter: SyncFilter | None = None) -> dict[str, Any]:
        request = SyncRequest(SyncToken.parse(token), 0, False, sync_filter or SyncFilter())
        built = await self.server.sync._build_cached(who, request)
        # Both paths make the engine's typed result; the v3 view renders either.
        expected = v3.render(await self.database._build(who, request))
        if built is None:
            self.fallbacks += 1
            response = await self.server.sync.sync(who, request)
        else:
            response = v3.render(built)
        assert _plain(response) == _plain(expected)
        return _plain(response)


def bodies(response: dict[str, Any], room_id: str) -> list[str]:
    room = response["rooms"]["join"].get(room_id)
    return [e["content"].get("body", e["type"]) for e in room["timeline"]["events"]] \
        if room else []


async def test_two_rooms_interleaved_are_served_from_memory(school: School,
                                                          server: MatrixServer) -> None:
    teacher = await new_requester(school, server, "lehrer")
    colleague = await new_requester(school, server, "kollege")
    rooms = []
    for name in ("A", "B"):
        room_id = await server.rooms.create_room(
            teacher, CreateRoomRequest(name=name, invite=(colleague.user_id,)))
        await server.rooms.join(colleague, room_id)
        rooms.append(room_id)
    syncs = Syncs(server)
    token = await syncs.initial(colleague)
    for n in range(6):
        await server.rooms.send(teacher, rooms[n % 2], "m.room.message",
                                {"msgtype": "m.text", "body": f"m{n}"}, txn_id=f"t{n}")
    news = await syncs.since(colleague, token)
    assert syncs.fallbacks == 0
    assert bodies(news, rooms[0]) == ["m0", "m2", "m4"]
    assert bodies(news, rooms[1]) == ["m1", "m3", "m5"]
    # The sender's own device sees its transaction ids, from memory as from the database.
    mine = await syncs.since(teacher, token)
    assert syncs.fallbacks == 0
    assert [e["unsigned"]["transaction_id"] for e in
            mine["rooms"]["join"][rooms[1]]["timeline"]["events"]] == ["t1", "t3", "t5"]
    assert "transaction_id" not in str(news)
    # Nothing new: an empty answer, still without the database.
    quiet = await syncs.since(colleague, news["next_batch"])
    assert quiet["rooms"]["join"] == {} and syncs.fallbacks == 0
    # A filter limiting the timeline below the news: limited, with state: the database.
    few = await syncs.since(colleague, token, SyncFilter(timeline_limit=2))
    assert few["rooms"]["join"][rooms[0]]["timeline"]["limited"] is True
    assert syncs.fallbacks == 1


async def test_a_token_older_than_the_cache_falls_back(school: School,
                                                       server: MatrixServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    teacher = await new_requester(school, server, "lehrer")
    colleague = await new_requester(school, server, "kollege")
    room_id = await server.rooms.create_room(
        teacher, CreateRoomRequest(invite=(colleague.user_id,)))
    await server.rooms.join(colleague, room_id)
    syncs = Syncs(server)
    old = await syncs.initial(colleague)
    await server.rooms.send(teacher, room_id, "m.room.message", {"msgtype": "m.text",
                                                                 "body": "before"})
    server.sync_cache.reset()  # as after another writer: the cache starts after "before"
    await server.rooms.send(teacher, room_id, "m.room.message", {"msgtype": "m.text",
                                                                 "body": "after"})
    news = await syncs.since(colleague, old)
    assert bodies(news, room_id) == ["before", "after"]
    assert syncs.fallbacks == 1
    # A ring that dropped events the token has not seen: the database again.
    monkeypatch.setattr(cache_module, "RING_SIZE", 3)
    server.sync_cache.reset()
    current = (await syncs.since(colleague, news["next_batch"]))["next_batch"]
    for n in range(5):
        await server.rooms.send(teacher, room_id, "m.room.message",
                                {"msgtype": "m.text", "body": f"r{n}"})
    fallbacks = syncs.fallbacks
    ring = await syncs.since(colleague, current)
    assert bodies(ring, room_id) == [f"r{n}" for n in range(5)]
    assert syncs.fallbacks == fallbacks + 1
    recent = await syncs.since(colleague, ring["next_batch"])
    assert recent["rooms"]["join"] == {} and syncs.fallbacks == fallbacks + 1


async def test_membership_changes_invalidate(school: School, server: MatrixServer) -> None:
    teacher = await new_requester(school, server, "lehrer")
    colleague = await new_requester(school, server, "kollege")
    room_id = await server.rooms.create_room(teacher, CreateRoomRequest(name="Neu"))
    syncs = Syncs(server)
    token = await syncs.initial(colleague)
    assert await syncs.since(colleague, token)  # memberships now cached: no room
    await server.rooms.invite(teacher, room_id, colleague.user_id)
    invited = await syncs.since(colleague, token)
    assert room_id in invited["rooms"]["invite"]
    await server.rooms.join(colleague, room_id)
    joined = await syncs.since(colleague, invited["next_batch"])
    assert room_id in joined["rooms"]["join"] and joined["rooms"]["join"][room_id]["state"]
    fallbacks = syncs.fallbacks
    await server.rooms.send(teacher, room_id, "m.room.message", {"msgtype": "m.text",
                                                                 "body": "hallo"})
    news = await syncs.since(colleague, joined["next_batch"])
    assert bodies(news, room_id) == ["hallo"] and syncs.fallbacks == fallbacks
    await server.rooms.leave(colleague, room_id)
    left = await syncs.since(colleague, news["next_batch"])
    assert room_id in left["rooms"]["leave"] and room_id not in left["rooms"]["join"]
    await server.rooms.send(teacher, room_id, "m.room.message", {"msgtype": "m.text",
                                                                 "body": "weg"})
    after = await syncs.since(colleague, left["next_batch"])
    assert after["rooms"]["join"] == {} and after["rooms"]["leave"] == {}


async def test_redactions_reach_cached_and_later_syncs(school: School,
                                                      server: MatrixServer) -> None:
    teacher = await new_requester(school, server, "lehrer")
    colleague = await new_requester(school, server, "kollege")
    room_id = await server.rooms.create_room(
        teacher, CreateRoomRequest(invite=(colleague.user_id,)))
    await server.rooms.join(colleague, room_id)
    syncs = Syncs(server)
    token = await syncs.initial(colleague)
    event_id = await server.rooms.send(teacher, room_id, "m.room.message",
                                       {"msgtype": "m.text", "body": "geheim"})
    seen = await syncs.since(colleague, token)
    assert bodies(seen, room_id) == ["geheim"]
    redaction = await server.rooms.redact_event(teacher, room_id, event_id, "versehen", None)
    news = await syncs.since(colleague, seen["next_batch"])
    events = news["rooms"]["join"][room_id]["timeline"]["events"]
    assert [(e["type"], e.get("redacts")) for e in events] == [("m.room.redaction", event_id)]
    # From the old token the message comes back redacted, with what redacted it.
    again = await syncs.since(colleague, token)
    first = again["rooms"]["join"][room_id]["timeline"]["events"][0]
    assert first["content"] == {}
    assert first["unsigned"]["redacted_because"]["event_id"] == redaction
    assert syncs.fallbacks == 0


async def test_other_writers_and_streams_are_noticed(school: School,
                                                     server: MatrixServer) -> None:
    teacher = await new_requester(school, server, "lehrer")
    colleague = await new_requester(school, server, "kollege")
    room_id = await server.rooms.create_room(
        teacher, CreateRoomRequest(invite=(colleague.user_id,)))
    await server.rooms.join(colleague, room_id)
    syncs = Syncs(server)
    token = await syncs.initial(colleague)
    assert (await syncs.since(colleague, token))["rooms"]["join"] == {}
    # Another process's room service (``schulhof rooms post``) writes.
    other = RoomService(school.db, DOMAIN, Notifier(), ChatPolicy(school.directory, DOMAIN,
                                                                  DOMAIN))
    await other.append_as(teacher.user_id, room_id, "m.room.message",
                          {"msgtype": "m.text", "body": "von außen"})
    assert await server.rooms.catch_up() is True
    assert not await server.rooms.catch_up()
    news = await syncs.since(colleague, token)
    assert bodies(news, room_id) == ["von außen"]
    # Unnoticed, followed by an own event: the gap resets the cache, nothing is lost.
    await other.append_as(teacher.user_id, room_id, "m.room.message",
                          {"msgtype": "m.text", "body": "zwei"})
    await server.rooms.send(teacher, room_id, "m.room.message", {"msgtype": "m.text",
                                                                 "body": "drei"})
    both = await syncs.since(colleague, news["next_batch"])
    assert bodies(both, room_id) == ["zwei", "drei"]
    # A receipt moves another stream: the database answers, then memory again.
    fallbacks = syncs.fallbacks
    await server.receipts.put(room_id, teacher.user_id, "m.read", "", both["rooms"]["join"][
        room_id]["timeline"]["events"][-1]["event_id"])
    receipt = await syncs.since(colleague, both["next_batch"])
    assert receipt["rooms"]["join"][room_id]["ephemeral"]["events"][0]["type"] == "m.receipt"
    assert syncs.fallbacks == fallbacks + 1
    await syncs.since(colleague, receipt["next_batch"])
    assert syncs.fallbacks == fallbacks + 1


async def test_an_event_and_its_relation_in_one_batch_carry_the_bundle(
        school: School, server: MatrixServer) -> None:
    teacher = await new_requester(school, server, "lehrer")
    colleague = await new_requester(school, server, "kollege")
    room_id = await server.rooms.create_room(
        teacher, CreateRoomRequest(invite=(colleague.user_id,)))
    await server.rooms.join(colleague, room_id)
    syncs = Syncs(server)
    token = await syncs.initial(colleague)
    root = await server.rooms.send(teacher, room_id, "m.room.message",
                                   {"msgtype": "m.text", "body": "Frage"})
    reply = await server.rooms.send(teacher, room_id, "m.room.message", {
        "msgtype": "m.text", "body": "Antwort",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    news = await syncs.since(colleague, token)  # equal to the database path's answer
    [first, _second] = news["rooms"]["join"][room_id]["timeline"]["events"]
    assert first["unsigned"]["m.relations"]["m.thread"]["latest_event"]["event_id"] == reply
    assert syncs.fallbacks == 1
    # The reply alone (its root long sent) is served from memory again.
    later = await server.rooms.send(teacher, room_id, "m.room.message", {
        "msgtype": "m.text", "body": "Noch eine",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    again = await syncs.since(colleague, news["next_batch"])
    assert [e["event_id"] for e in again["rooms"]["join"][room_id]["timeline"]["events"]] \
        == [later]
    assert syncs.fallbacks == 1
