"""Finding people and rooms: /user_directory/search (10.13), /publicRooms and
/directory/list/room (10.5),
/rooms/{roomId}/context/{eventId} (10.9)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from messenger.api.errors import bad_json, invalid_param
from messenger.api.http import (
    MAX_STORED_INT,
    context,
    int_query,
    json_body,
    ok,
    parse_int,
    requester,
)
from messenger.render import render_events
from messenger.sync.tokens import room_token

MAX_SEARCH_RESULTS = 50
MAX_CONTEXT_LIMIT = 100


async def user_directory_search(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request)
    term = body.get("search_term")
    limit = body.get("limit", 10)
    if not isinstance(term, str) or not isinstance(limit, int) or isinstance(limit, bool):
        raise bad_json("search_term must be a string and limit an integer")
    limit = max(1, min(limit, MAX_SEARCH_RESULTS))
    matches, limited = await context(request).users.search(who.account, term, limit)
    return ok({"results": [{"user_id": m.user_id, "display_name": m.display_name}
                           for m in matches], "limited": limited})


async def public_rooms(request: web.Request) -> web.Response:
    await requester(request)  # the school's room list is for its members only
    if request.method == "POST":
        body = await json_body(request, allow_empty=True)
        limit, since = body.get("limit"), body.get("since")
        term = ((body.get("filter") or {}).get("generic_search_term") or "").lower()
    else:
        limit, since, term = request.query.get("limit"), request.query.get("since"), ""
    if isinstance(limit, str):
        limit = parse_int(limit, "limit", low=-MAX_STORED_INT - 1)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise invalid_param("limit must be an integer")
    limit_n = max(1, min(limit, 500)) if limit is not None else 100
    if since and not (isinstance(since, str) and since.startswith("o")):
        raise invalid_param("since must be what this server handed out")
    offset = parse_int(since[1:], "since") if since else 0
    rooms = await context(request).rooms.public_rooms()
    if term:
        rooms = [r for r in rooms if term in (r.get("name", "") + " " + r.get("topic", "") + " "
                                             + r.get("canonical_alias", "")).lower()]
    page = rooms[offset:offset + limit_n]
    body_out: dict[str, Any] = {"chunk": page, "total_room_count_estimate": len(rooms)}
    if offset + limit_n < len(rooms):
        body_out["next_batch"] = f"o{offset + limit_n}"
    if offset > 0:
        body_out["prev_batch"] = f"o{max(0, offset - limit_n)}"
    return ok(body_out)


async def event_context(request: web.Request) -> web.Response:
    who = await requester(request)
    ctx = context(request)
    limit = int_query(request, "limit", 10, low=0, high=MAX_CONTEXT_LIMIT)
    before, event, after, state = await ctx.rooms.context(
        who.user_id, request.match_info["room_id"], request.match_info["event_id"], limit)
    async with ctx.db.read() as session:
        rendered_before = await render_events(session, who, before)
        rendered_event = (await render_events(session, who, [event]))[0]
        rendered_after = await render_events(session, who, after)
        rendered_state = await render_events(session, who, state)
    start = before[-1].stream_ordering - 1 if before else event.stream_ordering - 1
    end = after[-1].stream_ordering if after else event.stream_ordering
    return ok({"event": rendered_event, "events_before": rendered_before,
               "events_after": rendered_after, "state": rendered_state,
               "start": room_token(start), "end": room_token(end)})


async def room_visibility(request: web.Request) -> web.Response:
    """GET /directory/list/room/{roomId} (spec 10.5): listed in /publicRooms or not."""
    public = await context(request).rooms.is_public(request.match_info["room_id"])
    return ok({"visibility": "public" if public else "private"})


def routes(prefix: str) -> list[web.RouteDef]:
    return [
        web.post(f"{prefix}/user_directory/search", user_directory_search),
        web.get(f"{prefix}/publicRooms", public_rooms),
        web.post(f"{prefix}/publicRooms", public_rooms),
        web.get(f"{prefix}/rooms/{{room_id}}/context/{{event_id}}", event_context),
        web.get(f"{prefix}/directory/list/room/{{room_id}}", room_visibility),
    ]
