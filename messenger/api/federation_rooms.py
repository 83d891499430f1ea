"""Thin handlers for the room endpoints of the Server-Server API: ``make_join``,
``send_join`` v2, ``make_leave``, ``send_leave`` v2, ``invite`` v2, ``event``,
``state``, ``state_ids``, ``event_auth``, ``get_missing_events``, ``backfill``,
``query/directory``
(the logic: ``messenger.rooms.resident``).  The origin is the one the X-Matrix
middleware authenticated; domain errors become errcodes here, never a 500."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from federation.matrix.canonical_json import CanonicalJsonError, parse_json
from messenger.api.federation import CONTEXT, ORIGIN
from messenger.rooms.errors import Forbidden, InvalidRequest, MessengerError, RoomNotFound
from messenger.rooms.resident import IncompatibleVersion, ResidentRooms

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


def _error(status: int, errcode: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message, **extra}, status=status)


def _rooms(request: web.Request) -> ResidentRooms:
    rooms = request.app[CONTEXT].rooms
    if rooms is None:
        raise web.HTTPNotFound()
    return rooms


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = parse_json(await request.read())
    except (ValueError, CanonicalJsonError):
        raise InvalidRequest("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


def _guarded(handler: Callable[[web.Request, ResidentRooms, str], Awaitable[Any]]) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        rooms = _rooms(request)
        try:
            return web.json_response(await handler(request, rooms, request[ORIGIN]))
        except IncompatibleVersion as exc:
            return _error(400, "M_INCOMPATIBLE_ROOM_VERSION", str(exc),
                          room_version=exc.version)
        except RoomNotFound as exc:
            return _error(404, "M_NOT_FOUND", str(exc))
        except Forbidden as exc:
            return _error(403, "M_FORBIDDEN", str(exc))
        except InvalidRequest as exc:
            return _error(400, "M_BAD_JSON", str(exc))
        except MessengerError as exc:
            return _error(400, "M_UNKNOWN", str(exc))
    return run


async def make_join(request: web.Request, rooms: ResidentRooms, origin: str) -> Any:
    versions = request.query.getall("ver", ["1"])
    return await rooms.make_membership(origin, "join", request.match_info["room_id"],
                                       request.match_info["user_id"], versions)


async def make_leave(request: web.Request, rooms: ResidentRooms, origin: str) -> Any:
    return await rooms.make_membership(origin, "leave", request.match_info["room_id"],
                                       request.match_info["user_id"], [])


def _send(kind: str) -> Callable[[web.Request, ResidentRooms, str], Awaitable[Any]]:
    async def send(request: web.Request, rooms: ResidentRooms, origin: str) -> Any:
        return await rooms.send_membership(origin, kind, request.match_info["room_id"],
                                           request.match_info["event_id"],
                                           await _body(request))
    return send


async def invite(request: web.Request, rooms: ResidentRooms, origin: str) -> Any:
    return await rooms.invite(origin, request.match_info["room_id"],
                              request.match_info["event_id"], await _body(request))


def _event_id_query(request: web.Request) -> str:
    event_id = request.query.get("event_id")
    if not event_id:
        raise InvalidRequest("event_id is required")
    return event_id


async def event(request: web.Request, rooms: ResidentRooms, origin: str) -> Any:
    answer = await rooms.event(origin, request.match_info["event_id"])
    return {"origin": rooms.server_name, "origin_server_ts": 0, **answer}


async def state_ids(request: web.Request, rooms: ResidentRooms, origin: str) -> Any:
    state, chain = await rooms.state_ids(origin, request.match_info["room_id"],
                                         _event_id_query(request))
    return {"pdu_ids": sorted(state.values()), "auth_chain_ids": sorted(chain)}


async def state(request: web.Request, rooms: ResidentRooms, origin: str) -> Any:
    pdus, chain = await rooms.state(origin, request.match_info["room_id"],
                                    _event_id_query(request))
    return {"pdus": pdus, "auth_chain": chain}


async def event_auth(request: web.Request, rooms: ResidentRooms, origin: str) -> Any:
    return {"auth_chain": await rooms.event_auth(origin, request.match_info["room_id"],
                                                 request.match_info["event_id"])}


async def get_missing_events(request: web.Request, rooms: ResidentRooms, origin: str) -> Any:
    return {"events": await rooms.get_missing_events(origin, request.match_info["room_id"],
                                                     await _body(request))}


async def backfill(request: web.Request, rooms: ResidentRooms, origin: str) -> Any:
    try:
        limit = int(request.query.get("limit", "10"))
    except ValueError:
        raise InvalidRequest("limit must be an integer") from None
    pdus = await rooms.backfill(origin, request.match_info["room_id"],
                                request.query.getall("v", []), limit)
    return {"origin": rooms.server_name, "origin_server_ts": 0, "pdus": pdus}


async def query_directory(request: web.Request, rooms: ResidentRooms, origin: str) -> Any:
    alias = request.query.get("room_alias")
    if not alias:
        raise InvalidRequest("room_alias is required")
    return await rooms.query_directory(origin, alias)


def routes() -> list[web.RouteDef]:
    return [
        web.get(f"{V1}/query/directory", _guarded(query_directory)),
        web.get(f"{V1}/make_join/{{room_id}}/{{user_id}}", _guarded(make_join)),
        web.put(f"{V2}/send_join/{{room_id}}/{{event_id}}", _guarded(_send("join"))),
        web.get(f"{V1}/make_leave/{{room_id}}/{{user_id}}", _guarded(make_leave)),
        web.put(f"{V2}/send_leave/{{room_id}}/{{event_id}}", _guarded(_send("leave"))),
        web.put(f"{V2}/invite/{{room_id}}/{{event_id}}", _guarded(invite)),
        web.get(f"{V1}/event/{{event_id}}", _guarded(event)),
        web.get(f"{V1}/state/{{room_id}}", _guarded(state)),
        web.get(f"{V1}/state_ids/{{room_id}}", _guarded(state_ids)),
        web.get(f"{V1}/event_auth/{{room_id}}/{{event_id}}", _guarded(event_auth)),
        web.post(f"{V1}/get_missing_events/{{room_id}}", _guarded(get_missing_events)),
        web.get(f"{V1}/backfill/{{room_id}}", _guarded(backfill)),
    ]
