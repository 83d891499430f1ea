"""Server-side key backup endpoints (spec: Client-Server API "Server-side key backups"):
/room_keys/version[/{version}] and /room_keys/keys[/{roomId}[/{sessionId}]]."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from messenger.api.errors import MatrixError
from messenger.api.http import json_body, ok, requester
from messenger.key_backup import (
    KeyBackup,
    KeyBackupError,
    MalformedField,
    Mismatch,
    MissingField,
    NoBackup,
    WrongVersion,
    parse_backup_config,
    parse_backup_keys,
)

KEY_BACKUP = web.AppKey("messenger_key_backup", KeyBackup)

Handler = Callable[[web.Request], Awaitable[web.Response]]


# Each refusal's (HTTP status, errcode).
ERRCODES: list[tuple[type[KeyBackupError], int, str]] = [
    (NoBackup, 404, "M_NOT_FOUND"),
    (MissingField, 400, "M_MISSING_PARAM"),
    (MalformedField, 400, "M_BAD_JSON"),
    (Mismatch, 400, "M_INVALID_PARAM"),
]


def _matrix_error(exc: KeyBackupError) -> MatrixError:
    if isinstance(exc, WrongVersion):  # the client learns which version to use
        return MatrixError(403, "M_WRONG_ROOM_KEYS_VERSION", str(exc),
                           current_version=exc.current_version)
    status, errcode = next((s, e) for kind, s, e in ERRCODES if isinstance(exc, kind))
    return MatrixError(status, errcode, str(exc))


def _backup_errors(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def translated(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except KeyBackupError as exc:
            raise _matrix_error(exc) from None

    return translated


def _backup(request: web.Request) -> KeyBackup:
    return request.app[KEY_BACKUP]


def _version_param(request: web.Request) -> str:
    version = request.query.get("version")
    if version is None:
        raise MatrixError(400, "M_MISSING_PARAM", "the version query parameter is required")
    return version


@_backup_errors
async def create_version(request: web.Request) -> web.Response:
    who = await requester(request)
    algorithm, auth_data = parse_backup_config(await json_body(request))
    return ok({"version": await _backup(request).create(who.account_id, algorithm, auth_data)})


@_backup_errors
async def latest_version(request: web.Request) -> web.Response:
    who = await requester(request)
    return ok((await _backup(request).latest(who.account_id)).to_json())


@_backup_errors
async def get_version(request: web.Request) -> web.Response:
    who = await requester(request)
    found = await _backup(request).get(who.account_id, request.match_info["version"])
    return ok(found.to_json())


@_backup_errors
async def update_version(request: web.Request) -> web.Response:
    who = await requester(request)
    body = await json_body(request)
    algorithm, auth_data = parse_backup_config(body)
    await _backup(request).update(who.account_id, request.match_info["version"], algorithm,
                                  auth_data, body.get("version"))
    return ok()


@_backup_errors
async def delete_version(request: web.Request) -> web.Response:
    who = await requester(request)
    await _backup(request).delete(who.account_id, request.match_info["version"])
    return ok()


@_backup_errors
async def put_keys(request: web.Request) -> web.Response:
    who = await requester(request)
    version = _version_param(request)
    keys = parse_backup_keys(await json_body(request), request.match_info.get("room_id"),
                             request.match_info.get("session_id"))
    etag, count = await _backup(request).put_keys(who.account_id, version, keys)
    return ok({"etag": etag, "count": count})


@_backup_errors
async def get_keys(request: web.Request) -> web.Response:
    who = await requester(request)
    room_id = request.match_info.get("room_id")
    session_id = request.match_info.get("session_id")
    found = await _backup(request).get_keys(who.account_id, _version_param(request), room_id,
                                            session_id)
    if room_id is not None and session_id is not None:
        key = found.get(room_id, {}).get(session_id)
        if key is None:
            raise NoBackup("no key for that session in the backup")
        return ok(key.to_json())
    rooms = {room: {"sessions": {s: key.to_json() for s, key in sessions.items()}}
             for room, sessions in found.items()}
    if room_id is not None:
        return ok(rooms.get(room_id, {"sessions": {}}))
    return ok({"rooms": rooms})


@_backup_errors
async def delete_keys(request: web.Request) -> web.Response:
    who = await requester(request)
    etag, count = await _backup(request).delete_keys(
        who.account_id, _version_param(request), request.match_info.get("room_id"),
        request.match_info.get("session_id"))
    return ok({"etag": etag, "count": count})


def routes(prefix: str) -> list[web.RouteDef]:
    keys = [f"{prefix}/room_keys/keys", f"{prefix}/room_keys/keys/{{room_id}}",
            f"{prefix}/room_keys/keys/{{room_id}}/{{session_id}}"]
    return [
        web.post(f"{prefix}/room_keys/version", create_version),
        web.get(f"{prefix}/room_keys/version", latest_version),
        web.get(f"{prefix}/room_keys/version/{{version}}", get_version),
        web.put(f"{prefix}/room_keys/version/{{version}}", update_version),
        web.delete(f"{prefix}/room_keys/version/{{version}}", delete_version),
        *(route for path in keys for route in (web.get(path, get_keys), web.put(path, put_keys),
                                               web.delete(path, delete_keys))),
    ]
