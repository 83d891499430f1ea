"""Cross-signing endpoints (spec: Client-Server API "Cross-signing"):
POST /keys/device_signing/upload and POST /keys/signatures/upload."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from messenger.api.errors import MatrixError, bad_json
from messenger.api.http import json_body, ok, requester
from messenger.cross_signing import (
    CrossSigning,
    CrossSigningError,
    InvalidKey,
    InvalidSignature,
    KeyIdInUse,
    MissingMasterKey,
    UnknownKey,
)

CROSS_SIGNING = web.AppKey("messenger_cross_signing", CrossSigning)

# Each refusal's (HTTP status, errcode); the status only matters for whole requests.
ERRCODES: list[tuple[type[CrossSigningError], int, str]] = [
    (InvalidSignature, 400, "M_INVALID_SIGNATURE"),
    (MissingMasterKey, 400, "M_MISSING_PARAM"),
    (KeyIdInUse, 403, "M_FORBIDDEN"),
    (UnknownKey, 404, "M_NOT_FOUND"),
    (InvalidKey, 400, "M_INVALID_PARAM"),
]


def matrix_error(exc: CrossSigningError) -> MatrixError:
    for kind, status, errcode in ERRCODES:
        if isinstance(exc, kind):
            return MatrixError(status, errcode, str(exc))
    raise exc  # a kind without an errcode is a bug: 500


async def upload_keys(request: web.Request) -> web.Response:
    """POST /keys/device_signing/upload (user-interactive auth as for deleting devices)."""
    who = await requester(request)
    body = await json_body(request)
    try:
        await request.app[CROSS_SIGNING].upload_keys(who, body, body.get("auth"),
                                                     request.remote or "")
    except CrossSigningError as exc:
        raise matrix_error(exc) from None
    return ok()


async def upload_signatures(request: web.Request) -> web.Response:
    """POST /keys/signatures/upload: failures per user and key, not for the request."""
    who = await requester(request)
    body = await json_body(request)
    if not all(isinstance(keys, Mapping) for keys in body.values()):
        raise bad_json("the body must map user ids to key ids to signed objects")
    failures = await request.app[CROSS_SIGNING].upload_signatures(who, body)
    return ok({"failures": {user: {key_id: matrix_error(exc).body()
                                   for key_id, exc in keys.items()}
                            for user, keys in failures.items()}})


def routes(prefix: str) -> list[web.RouteDef]:
    return [
        web.post(f"{prefix}/keys/device_signing/upload", upload_keys),
        web.post(f"{prefix}/keys/signatures/upload", upload_signatures),
    ]
