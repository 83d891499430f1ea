"""Per-room reads and reports that apps use beside the timeline (spec: Client-Server
API v1.12): GET /v1/rooms/{roomId}/hierarchy ("Spaces"), GET
/v1/rooms/{roomId}/timestamp_to_event ("Jumping to a date"), POST
/rooms/{roomId}/report[/{eventId}] ("Reporting content")."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from messenger.api.errors import MatrixError, bad_json, invalid_param
from messenger.api.http import (
    CONTEXT,
    MAX_STORED_INT,
    context,
    int_query,
    json_body,
    ok,
    parse_int,
    requester,
    string_field,
)
from messenger.reports import Reports
from messenger.rooms.reading import RoomReader
from messenger.spaces import MAX_DEPTH, Spaces
from messenger.storage import aliases as alias_store
from messenger.storage import timeline_queries as queries

SPACES = web.AppKey("messenger_spaces", Spaces)
REPORTS = web.AppKey("messenger_reports", Reports)
V1 = "/_matrix/client/v1"
DEFAULT_HIERARCHY_LIMIT = 50
MAX_HIERARCHY_LIMIT = 100


def install(app: web.Application) -> None:
    db = app[CONTEXT].db
    app[SPACES] = Spaces(db)
    app[REPORTS] = Reports(db, RoomReader(db))


async def hierarchy(request: web.Request) -> web.Response:
    who = await requester(request)
    suggested = request.query.get("suggested_only", "false")
    if suggested not in ("true", "false"):
        raise invalid_param("suggested_only must be true or false")
    offset = 0
    if text := request.query.get("from"):
        if not text.startswith("h"):
            raise invalid_param("from must be a next_batch this server handed out")
        offset = parse_int(text[1:], "from", high=100_000)
    page = await request.app[SPACES].hierarchy(
        who.user_id, request.match_info["room_id"],
        max_depth=int_query(request, "max_depth", MAX_DEPTH, low=0, high=MAX_DEPTH),
        suggested_only=suggested == "true", offset=offset,
        limit=int_query(request, "limit", DEFAULT_HIERARCHY_LIMIT, low=1,
                        high=MAX_HIERARCHY_LIMIT))
    body: dict[str, Any] = {"rooms": page.rooms}
    if page.next_offset is not None:
        body["next_batch"] = f"h{page.next_offset}"
    return ok(body)


async def timestamp_to_event(request: web.Request) -> web.Response:
    who = await requester(request)
    ts_text, direction = request.query.get("ts"), request.query.get("dir")
    if ts_text is None or direction is None:
        raise MatrixError(400, "M_MISSING_PARAM", "ts and dir are required")
    ts = parse_int(ts_text, "ts", high=MAX_STORED_INT)
    if direction not in ("f", "b"):
        raise invalid_param("dir must be f or b")
    ctx = context(request)
    room_id = request.match_info["room_id"]
    async with ctx.db.read() as session:
        upto = await ctx.rooms.visible_upto(session, who.user_id, room_id)
        event = await queries.event_near(session, room_id, ts, forward=direction == "f",
                                         upto=upto)
    if event is None:
        raise MatrixError(404, "M_NOT_FOUND", "no event in that direction from ts")
    return ok({"event_id": event.event_id,
               "origin_server_ts": int(event.pdu.get("origin_server_ts", 0))})


async def room_aliases(request: web.Request) -> web.Response:
    """GET /rooms/{roomId}/aliases (spec 10.2): the local aliases, for those who may
    read the room."""
    who = await requester(request)
    ctx = context(request)
    room_id = request.match_info["room_id"]
    async with ctx.db.read() as session:
        await ctx.rooms.visible_upto(session, who.user_id, room_id)
        names = await alias_store.of_room(session, room_id)
    return ok({"aliases": names})


async def report_event(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request, allow_empty=True)
    score = body.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int)):
        raise bad_json("score must be an integer")
    await request.app[REPORTS].report_event(
        who.user_id, request.match_info["room_id"], request.match_info["event_id"],
        string_field(body, "reason", required=False), score)
    return ok()


async def report_room(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request, allow_empty=True)
    await request.app[REPORTS].report_room(who.user_id, request.match_info["room_id"],
                                           string_field(body, "reason", required=False))
    return ok()


def routes(prefix: str) -> list[web.RouteDef]:
    return [
        web.get(f"{V1}/rooms/{{room_id}}/hierarchy", hierarchy),
        web.get(f"{V1}/rooms/{{room_id}}/timestamp_to_event", timestamp_to_event),
        web.post(f"{prefix}/rooms/{{room_id}}/report/{{event_id}}", report_event),
        web.post(f"{prefix}/rooms/{{room_id}}/report", report_room),
        web.get(f"{prefix}/rooms/{{room_id}}/aliases", room_aliases),
    ]
