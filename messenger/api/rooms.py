"""Room endpoints (spec: Client-Server API 10.1 createRoom, 10.2 aliases,
10.4 membership, 9.5-9.6 sending and getting events, 9.7 redactions)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from messenger.api.errors import MatrixError, bad_json, invalid_param
from messenger.api.http import (
    context,
    event_content,
    int_query,
    json_body,
    ok,
    rate_limit,
    requester,
    string_field,
)
from messenger.render import render_events
from messenger.rooms.errors import AliasInUse, Forbidden
from messenger.rooms.presets import PRESETS, CreateRoomRequest
from messenger.sync.tokens import InvalidToken, parse_position, room_token


def _create_request(body: dict[str, Any]) -> CreateRoomRequest:
    visibility = body.get("visibility", "private")
    if visibility not in ("public", "private"):
        raise bad_json("visibility must be public or private")
    preset = body.get("preset") or ("public_chat" if visibility == "public" else "private_chat")
    if preset not in PRESETS:
        raise bad_json(f"preset must be one of {', '.join(PRESETS)}")
    invite = body.get("invite", [])
    if not isinstance(invite, list) or not all(isinstance(u, str) for u in invite):
        raise bad_json("invite must be a list of user ids")
    initial = []
    for item in body.get("initial_state", []) or []:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str) \
                or not isinstance(item.get("content"), dict) \
                or not isinstance(item.get("state_key", ""), str):
            raise bad_json("initial_state entries need type, state_key and content")
        initial.append((item["type"], item.get("state_key", ""), item["content"]))
    for key in ("name", "topic", "room_alias_name", "room_version"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise bad_json(f"{key} must be a string")
    for key in ("power_level_content_override", "creation_content"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise bad_json(f"{key} must be an object")
    return CreateRoomRequest(
        preset=preset, is_public=visibility == "public", name=body.get("name"),
        topic=body.get("topic"), invite=tuple(dict.fromkeys(invite)),
        is_direct=bool(body.get("is_direct", False)), initial_state=tuple(initial),
        power_level_content_override=body.get("power_level_content_override"),
        room_alias_name=body.get("room_alias_name"), room_version=body.get("room_version"),
        creation_content=body.get("creation_content") or {})


async def create_room(request: web.Request) -> web.Response:
    who = await requester(request)
    rate_limit(request, "create_room", who)
    body = event_content(await json_body(request), context(request).limits)
    try:
        room_id = await context(request).rooms.create_room(who, _create_request(body))
    except AliasInUse as exc:
        raise MatrixError(400, "M_ROOM_IN_USE", str(exc)) from None
    return ok({"room_id": room_id})


async def join(request: web.Request) -> web.Response:
    who = await requester(request)
    await json_body(request, allow_empty=True)
    target = request.match_info.get("room_id_or_alias") or request.match_info["room_id"]
    ctx = context(request)
    # Servers to join a room of another server through (spec: ``server_name``, ``via``).
    via = [*request.query.getall("server_name", []), *request.query.getall("via", [])]
    try:
        room_id = await ctx.rooms.join(who, target, via[:10])
    except Forbidden:
        # A class room is invite-only, but its group's members may always come back.
        room_id = await ctx.rooms.resolve_room(target)
        if ctx.school_rooms is None or not await ctx.school_rooms.readmit(who.user_id,
                                                                          room_id):
            raise
        room_id = await ctx.rooms.join(who, room_id)
    return ok({"room_id": room_id})


async def invite(request: web.Request) -> web.Response:
    who = await requester(request)
    rate_limit(request, "invite", who)
    body = await json_body(request)
    await context(request).rooms.invite(who, request.match_info["room_id"],
                                        string_field(body, "user_id") or "",
                                        string_field(body, "reason", required=False))
    return ok()


async def leave(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request, allow_empty=True)
    await context(request).rooms.leave(who, request.match_info["room_id"],
                                       string_field(body, "reason", required=False))
    return ok()


async def forget(request: web.Request) -> web.Response:
    who = await requester(request)
    await context(request).rooms.forget(who, request.match_info["room_id"])
    return ok()


def _moderation(action: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        who = await requester(request)
        body = await json_body(request)
        method = getattr(context(request).rooms, action)
        await method(who, request.match_info["room_id"], string_field(body, "user_id") or "",
                     string_field(body, "reason", required=False))
        return ok()
    return handler


async def joined_rooms(request: web.Request) -> web.Response:
    who = await requester(request)
    return ok({"joined_rooms": await context(request).rooms.joined_rooms(who.user_id)})


async def members(request: web.Request) -> web.Response:
    who = await requester(request)
    ctx = context(request)
    membership = request.query.get("membership")
    events = await ctx.rooms.members(who.user_id, request.match_info["room_id"], membership)
    not_membership = request.query.get("not_membership")
    if not_membership:
        events = [e for e in events if e.pdu["content"].get("membership") != not_membership]
    async with ctx.db.read() as session:
        chunk = await render_events(session, who, events)
    return ok({"chunk": chunk})


async def joined_members(request: web.Request) -> web.Response:
    who = await requester(request)
    events = await context(request).rooms.members(who.user_id, request.match_info["room_id"],
                                                  "join")
    joined = {}
    for event in events:
        content = event.pdu["content"]
        joined[event.state_key] = {"display_name": content.get("displayname"),
                                   "avatar_url": content.get("avatar_url")}
    return ok({"joined": joined})


async def room_state(request: web.Request) -> web.Response:
    who = await requester(request)
    ctx = context(request)
    events = await ctx.rooms.room_state(who.user_id, request.match_info["room_id"])
    async with ctx.db.read() as session:
        return ok(await render_events(session, who, events))


async def get_state_event(request: web.Request) -> web.Response:
    who = await requester(request)
    event = await context(request).rooms.state_event(
        who.user_id, request.match_info["room_id"], request.match_info["event_type"],
        request.match_info.get("state_key", ""))
    return ok(event.pdu.get("content", {}))


async def put_state_event(request: web.Request) -> web.Response:
    who = await requester(request)
    ctx = context(request)
    content = event_content(await json_body(request), ctx.limits)
    event_id = await ctx.rooms.set_state(
        who, request.match_info["room_id"], request.match_info["event_type"],
        request.match_info.get("state_key", ""), content)
    return ok({"event_id": event_id})


async def send(request: web.Request) -> web.Response:
    who = await requester(request)
    rate_limit(request, "send", who)
    ctx = context(request)
    content = event_content(await json_body(request), ctx.limits)
    event_id = await ctx.rooms.send(who, request.match_info["room_id"],
                                    request.match_info["event_type"], content,
                                    txn_id=request.match_info["txn_id"])
    return ok({"event_id": event_id})


async def redact(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request, allow_empty=True)
    event_id = await context(request).rooms.redact_event(
        who, request.match_info["room_id"], request.match_info["event_id"],
        string_field(body, "reason", required=False), request.match_info.get("txn_id"))
    return ok({"event_id": event_id})


async def get_event(request: web.Request) -> web.Response:
    who = await requester(request)
    ctx = context(request)
    event = await ctx.rooms.get_event(who.user_id, request.match_info["room_id"],
                                      request.match_info["event_id"])
    async with ctx.db.read() as session:
        return ok((await render_events(session, who, [event]))[0])


def _position(request: web.Request, key: str) -> int | None:
    text = request.query.get(key)
    if not text:
        return None
    try:
        return parse_position(text)
    except InvalidToken as exc:
        raise invalid_param(str(exc)) from None


async def messages(request: web.Request) -> web.Response:
    who = await requester(request)
    ctx = context(request)
    direction = request.query.get("dir", "b")
    if direction not in ("b", "f"):
        raise invalid_param("dir must be b or f")
    limit = int_query(request, "limit", ctx.limits.default_messages_limit, low=1,
                      high=ctx.limits.max_messages_limit)
    page = await ctx.rooms.messages(who.user_id, request.match_info["room_id"],
                                    from_position=_position(request, "from"),
                                    to_position=_position(request, "to"),
                                    backwards=direction == "b", limit=limit)
    async with ctx.db.read() as session:
        chunk = await render_events(session, who, page.events)
    body: dict[str, Any] = {"chunk": chunk, "start": room_token(page.start_position),
                            "state": []}
    if page.next_position is not None:
        body["end"] = room_token(page.next_position)
    return ok(body)


async def get_alias(request: web.Request) -> web.Response:
    ctx = context(request)
    await requester(request)
    target = await ctx.rooms.lookup_alias(request.match_info["alias"])
    return ok({"room_id": target.room_id, "servers": list(target.servers)})


async def put_alias(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request)
    await context(request).rooms.create_alias(who, request.match_info["alias"],
                                              string_field(body, "room_id") or "")
    return ok()


async def delete_alias(request: web.Request) -> web.Response:
    who = await requester(request)
    await context(request).rooms.delete_alias(who, request.match_info["alias"])
    return ok()


async def typing(request: web.Request) -> web.Response:
    who = await requester(request)
    if request.match_info["user_id"] != who.user_id:
        raise MatrixError(403, "M_FORBIDDEN", "you can only set your own typing state")
    body = await json_body(request)
    typing_now = body.get("typing")
    timeout = body.get("timeout", 30_000)
    if not isinstance(typing_now, bool) or not isinstance(timeout, int):
        raise bad_json("typing must be a boolean and timeout an integer")
    ctx = context(request)
    room_id = request.match_info["room_id"]
    if room_id not in await ctx.rooms.joined_rooms(who.user_id):
        raise MatrixError(403, "M_FORBIDDEN", "you are not in this room")
    ctx.typing.set_typing(room_id, who.user_id, typing_now, timeout)
    return ok()


def routes(prefix: str) -> list[web.RouteDef]:
    room = f"{prefix}/rooms/{{room_id}}"
    return [
        web.post(f"{prefix}/createRoom", create_room),
        web.post(f"{prefix}/join/{{room_id_or_alias}}", join),
        web.post(f"{room}/join", join),
        web.post(f"{room}/invite", invite),
        web.post(f"{room}/leave", leave),
        web.post(f"{room}/forget", forget),
        web.post(f"{room}/kick", _moderation("kick")),
        web.post(f"{room}/ban", _moderation("ban")),
        web.post(f"{room}/unban", _moderation("unban")),
        web.get(f"{prefix}/joined_rooms", joined_rooms),
        web.get(f"{room}/members", members),
        web.get(f"{room}/joined_members", joined_members),
        web.get(f"{room}/state", room_state),
        web.get(f"{room}/state/{{event_type}}", get_state_event),
        web.put(f"{room}/state/{{event_type}}", put_state_event),
        web.get(f"{room}/state/{{event_type}}/{{state_key:.*}}", get_state_event),
        web.put(f"{room}/state/{{event_type}}/{{state_key:.*}}", put_state_event),
        web.put(f"{room}/send/{{event_type}}/{{txn_id}}", send),
        web.put(f"{room}/redact/{{event_id}}/{{txn_id}}", redact),
        web.post(f"{room}/redact/{{event_id}}", redact),
        web.get(f"{room}/event/{{event_id}}", get_event),
        web.get(f"{room}/messages", messages),
        web.put(f"{room}/typing/{{user_id}}", typing),
        web.get(f"{prefix}/directory/room/{{alias}}", get_alias),
        web.put(f"{prefix}/directory/room/{{alias}}", put_alias),
        web.delete(f"{prefix}/directory/room/{{alias}}", delete_alias),
    ]
