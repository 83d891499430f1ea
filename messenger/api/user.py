"""Per-user endpoints: profile (from the directory), push rules, account data,
receipts, presence (spec: Client-Server API 10.3 profiles, 13.13 push, 10.5 client
config, 13.7 receipts, 13.8 presence); pushers are in messenger.api.pushers."""

from __future__ import annotations

import json

from aiohttp import web

from directory.model import NotFound
from messenger.api.errors import MatrixError, bad_json, invalid_param
from messenger.api.http import context, json_body, ok, own_user, requester
from messenger.events.identifiers import InvalidIdentifier, UserId
from messenger.rooms.errors import RoomNotFound
from messenger.storage import user_data


async def _display_name(request: web.Request, user_id: str) -> str:
    ctx = context(request)
    try:
        user = UserId.parse(user_id)
    except InvalidIdentifier:
        raise MatrixError(400, "M_INVALID_PARAM", f"not a user id: {user_id}") from None
    if user.server != ctx.server_name:
        raise MatrixError(404, "M_NOT_FOUND", "profiles of other servers are not available yet")
    try:
        account = await ctx.directory.get_account(user.localpart)
    except NotFound:
        raise MatrixError(404, "M_NOT_FOUND", f"unknown user {user_id}") from None
    return account.display_name


async def profile(request: web.Request) -> web.Response:
    await requester(request)
    name = await _display_name(request, request.match_info["user_id"])
    field = request.match_info.get("field")
    if field == "displayname":
        return ok({"displayname": name})
    if field == "avatar_url":
        return ok({})  # no avatars yet: the spec allows the key to be absent
    return ok({"displayname": name})


async def set_profile(request: web.Request) -> web.Response:
    raise MatrixError(403, "M_FORBIDDEN", "names come from the school directory")


def _room_key(request: web.Request) -> str:
    return request.match_info.get("room_id", "")


async def get_account_data(request: web.Request) -> web.Response:
    who = await requester(request)
    own_user(request, who)
    async with context(request).db.read() as session:
        content = await user_data.get_account_data(session, who.account_id, _room_key(request),
                                                   request.match_info["type"])
    if content is None:
        raise MatrixError(404, "M_NOT_FOUND", "no account data of that type")
    return ok(content)


async def put_account_data(request: web.Request) -> web.Response:
    who = await requester(request)
    own_user(request, who)
    body = await json_body(request)
    ctx = context(request)
    if len(json.dumps(body).encode()) > ctx.limits.max_event_bytes:
        raise MatrixError(413, "M_TOO_LARGE", "account data too large")
    async with ctx.db.write() as session:
        stream_id = await user_data.put_account_data(
            session, who.account_id, _room_key(request), request.match_info["type"], body)
    ctx.sync.account_data_changed(who.user_id, stream_id)
    return ok()


async def receipt(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request, allow_empty=True)
    ctx = context(request)
    room_id = request.match_info["room_id"]
    thread = body.get("thread_id", "")
    if not isinstance(thread, str):
        raise bad_json("thread_id must be a string")
    receipt_type = request.match_info["receipt_type"]
    # Threaded receipts (spec 11.6.2.2): "main" or a thread root's event id, and
    # never on the fully-read marker, which is per room.
    if thread and (receipt_type == "m.fully_read" or not (
            thread == "main" or (thread.startswith("$") and len(thread.encode()) <= 255))):
        raise invalid_param("thread_id must be \"main\" or a thread root's event id, "
                            "and m.fully_read takes none")
    event_id = request.match_info["event_id"]
    await ctx.rooms.get_event(who.user_id, room_id, event_id)
    if receipt_type == "m.fully_read":  # spec 13.7: the same as the read marker
        async with ctx.db.write() as session:
            stream_id = await user_data.put_account_data(
                session, who.account_id, room_id, "m.fully_read", {"event_id": event_id})
        ctx.sync.account_data_changed(who.user_id, stream_id)
        return ok()
    await ctx.receipts.put(room_id, who.user_id, receipt_type, thread, event_id)
    return ok()


async def read_markers(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request)
    ctx = context(request)
    room_id = request.match_info["room_id"]
    for receipt_type in ("m.read", "m.read.private"):
        if isinstance(body.get(receipt_type), str):
            await ctx.rooms.get_event(who.user_id, room_id, body[receipt_type])
            await ctx.receipts.put(room_id, who.user_id, receipt_type, "", body[receipt_type])
    fully_read = body.get("m.fully_read")
    if isinstance(fully_read, str):
        try:
            await ctx.rooms.get_event(who.user_id, room_id, fully_read)
        except RoomNotFound:
            raise MatrixError(404, "M_NOT_FOUND", "unknown event") from None
        async with ctx.db.write() as session:
            stream_id = await user_data.put_account_data(
                session, who.account_id, room_id, "m.fully_read", {"event_id": fully_read})
        ctx.sync.account_data_changed(who.user_id, stream_id)
    return ok()


async def presence(request: web.Request) -> web.Response:
    await requester(request)
    if request.method == "PUT":
        await json_body(request)
        return ok()
    return ok({"presence": "offline"})  # presence is not tracked yet


def routes(prefix: str) -> list[web.RouteDef]:
    user = f"{prefix}/user/{{user_id}}"
    return [
        web.get(f"{prefix}/profile/{{user_id}}", profile),
        web.get(f"{prefix}/profile/{{user_id}}/{{field}}", profile),
        web.put(f"{prefix}/profile/{{user_id}}/{{field}}", set_profile),
        web.get(f"{user}/account_data/{{type}}", get_account_data),
        web.put(f"{user}/account_data/{{type}}", put_account_data),
        web.get(f"{user}/rooms/{{room_id}}/account_data/{{type}}", get_account_data),
        web.put(f"{user}/rooms/{{room_id}}/account_data/{{type}}", put_account_data),
        web.post(f"{prefix}/rooms/{{room_id}}/receipt/{{receipt_type}}/{{event_id}}", receipt),
        web.post(f"{prefix}/rooms/{{room_id}}/read_markers", read_markers),
        web.get(f"{prefix}/presence/{{user_id}}/status", presence),
        web.put(f"{prefix}/presence/{{user_id}}/status", presence),
    ]
