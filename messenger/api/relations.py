"""Relations and threads (spec: Client-Server API v1.12, GET
/_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]] and
GET /_matrix/client/v1/rooms/{roomId}/threads)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from messenger.api.errors import invalid_param
from messenger.api.http import CONTEXT, context, int_query, ok, requester
from messenger.relations import Relations
from messenger.render import render_events
from messenger.rooms.reading import RoomReader
from messenger.sync.tokens import InvalidToken, parse_position, room_token

RELATIONS = web.AppKey("messenger_relations", Relations)
V1 = "/_matrix/client/v1"
DEFAULT_LIMIT = 50  # what Synapse answers without ?limit
MAX_LIMIT = 1000


def install(app: web.Application) -> None:
    db = app[CONTEXT].db
    app[RELATIONS] = Relations(db, RoomReader(db))


def _position(request: web.Request, key: str) -> int | None:
    text = request.query.get(key)
    if not text:
        return None
    try:
        return parse_position(text)
    except InvalidToken as exc:
        raise invalid_param(f"{key}: {exc}") from None


def _flag(request: web.Request, key: str) -> bool:
    text = request.query.get(key, "false")
    if text not in ("true", "false"):
        raise invalid_param(f"{key} must be true or false")
    return text == "true"


async def relations(request: web.Request) -> web.Response:
    who = await requester(request)
    direction = request.query.get("dir", "b")
    if direction not in ("b", "f"):
        raise invalid_param("dir must be b or f")
    page = await request.app[RELATIONS].relations(
        who.user_id, request.match_info["room_id"], request.match_info["event_id"],
        rel_type=request.match_info.get("rel_type"),
        event_type=request.match_info.get("event_type"),
        from_position=_position(request, "from"), to_position=_position(request, "to"),
        backwards=direction == "b",
        limit=int_query(request, "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT),
        recurse=_flag(request, "recurse"))
    async with context(request).db.read() as session:
        chunk = await render_events(session, who, page.events)
    body: dict[str, Any] = {"chunk": chunk}
    if page.next_position is not None:
        body["next_batch"] = room_token(page.next_position)
    if page.recursion_depth is not None:
        body["recursion_depth"] = page.recursion_depth
    return ok(body)


async def threads(request: web.Request) -> web.Response:
    who = await requester(request)
    include = request.query.get("include", "all")
    if include not in ("all", "participated"):
        raise invalid_param("include must be all or participated")
    page = await request.app[RELATIONS].threads(
        who.user_id, request.match_info["room_id"], participated_only=include == "participated",
        from_position=_position(request, "from"),
        limit=int_query(request, "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT))
    async with context(request).db.read() as session:
        chunk = await render_events(session, who, page.roots)
    body: dict[str, Any] = {"chunk": chunk}
    if page.next_position is not None:
        body["next_batch"] = room_token(page.next_position)
    return ok(body)


def routes(prefix: str) -> list[web.RouteDef]:
    base = f"{V1}/rooms/{{room_id}}"
    return [
        web.get(f"{base}/relations/{{event_id}}", relations),
        web.get(f"{base}/relations/{{event_id}}/{{rel_type}}", relations),
        web.get(f"{base}/relations/{{event_id}}/{{rel_type}}/{{event_type}}", relations),
        web.get(f"{base}/threads", threads),
    ]
