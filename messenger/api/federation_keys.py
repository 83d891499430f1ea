"""Thin federation handlers for end-to-end keys (Server-Server API "End-to-End
Encryption"): ``GET /_matrix/federation/v1/user/devices/{userId}``, ``POST
/user/keys/query`` and ``POST /user/keys/claim``, answered from
``messenger.federation_keys.LocalKeys``.  The federation middleware has already
checked the X-Matrix signature and the partner list."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from messenger.api.errors import MatrixError
from messenger.api.http import parse_request_json
from messenger.events.identifiers import InvalidIdentifier, UserId
from messenger.federation_keys import BadKeyRequest, LocalKeys

KEYS = web.AppKey("federation_local_keys", LocalKeys)


def _error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


async def _object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        # Strict, and no NUL or lone surrogate in strings (they cannot be looked up
        # in PostgreSQL text).
        body = parse_request_json(await request.read())
    except MatrixError as exc:
        return _error(exc.status, exc.errcode, exc.message)
    if not isinstance(body, dict):
        return _error(400, "M_BAD_JSON", "the request body must be a JSON object")
    return body


async def user_devices(request: web.Request) -> web.Response:
    keys = request.app[KEYS]
    user_id = request.match_info["user_id"]
    try:
        user = UserId.parse(user_id)
    except InvalidIdentifier:
        return _error(400, "M_INVALID_PARAM", "not a user id")
    if user.server != keys.server_name:
        return _error(403, "M_FORBIDDEN", "not a user of this server")
    return web.json_response(await keys.devices(user_id))


async def keys_query(request: web.Request) -> web.Response:
    body = await _object(request)
    if isinstance(body, web.Response):
        return body
    try:
        return web.json_response(await request.app[KEYS].query(body.get("device_keys")))
    except BadKeyRequest as exc:
        return _error(400, "M_BAD_JSON", str(exc))


async def keys_claim(request: web.Request) -> web.Response:
    body = await _object(request)
    if isinstance(body, web.Response):
        return body
    try:
        return web.json_response(await request.app[KEYS].claim(body.get("one_time_keys")))
    except BadKeyRequest as exc:
        return _error(400, "M_BAD_JSON", str(exc))


def install(app: web.Application, keys: LocalKeys) -> None:
    app[KEYS] = keys
    app.add_routes([
        web.get("/_matrix/federation/v1/user/devices/{user_id}", user_devices),
        web.post("/_matrix/federation/v1/user/keys/query", keys_query),
        web.post("/_matrix/federation/v1/user/keys/claim", keys_claim),
    ])
