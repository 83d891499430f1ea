"""Matrix error responses (spec: Client-Server API 3.4 "Standard error response"
and "Common error codes") and the one place domain errors become them."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from directory.auth import AuthenticationFailed, AuthenticationThrottled
from messenger.account import WeakPassword
from messenger.events.canonical import CanonicalJsonError
from messenger.rooms.errors import (
    AliasInUse,
    DeviceLoggedOut,
    DuplicateAnnotation,
    Forbidden,
    InvalidRequest,
    RateLimited,
    RoomNotFound,
    TooLarge,
    UnsupportedVersion,
)
from messenger.sessions import AuthRequired, UnknownToken
from messenger.sync.tokens import InvalidToken

PASSWORD_FLOWS = [{"stages": ["m.login.password"]}]


class MatrixError(Exception):
    def __init__(self, status: int, errcode: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        if not self.errcode:  # the first 401 of user-interactive auth has no errcode
            return dict(self.extra)
        return {"errcode": self.errcode, "error": self.message, **self.extra}


def bad_json(message: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", message)


def invalid_param(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", message)


def matrix_error_for(exc: Exception) -> MatrixError | None:
    """The Matrix error a domain error stands for, or None for a bug (500)."""
    if isinstance(exc, MatrixError):
        return exc
    if isinstance(exc, AuthenticationThrottled):
        return MatrixError(429, "M_LIMIT_EXCEEDED", "too many failed logins, try later",
                           retry_after_ms=math.ceil(exc.retry_after * 1000))
    if isinstance(exc, RateLimited):
        return MatrixError(429, "M_LIMIT_EXCEEDED", str(exc),
                           retry_after_ms=math.ceil(exc.retry_after * 1000))
    if isinstance(exc, TooLarge):
        return MatrixError(413, "M_TOO_LARGE", str(exc))
    if isinstance(exc, AuthenticationFailed):
        return MatrixError(403, "M_FORBIDDEN", "invalid login or password")
    if isinstance(exc, UnknownToken | DeviceLoggedOut):
        return MatrixError(401, "M_UNKNOWN_TOKEN", str(exc), soft_logout=False)
    if isinstance(exc, AuthRequired):
        extra: dict[str, Any] = {"flows": PASSWORD_FLOWS, "params": {}, "session": exc.session}
        if exc.failed:
            return MatrixError(401, "M_FORBIDDEN", str(exc), **extra)
        # Spec 5.4.1: the first 401 of the flow carries only flows, params and session.
        return MatrixError(401, "", str(exc), **extra)
    if isinstance(exc, DuplicateAnnotation):
        return MatrixError(400, "M_DUPLICATE_ANNOTATION", str(exc))
    if isinstance(exc, WeakPassword):
        return MatrixError(400, "M_WEAK_PASSWORD", str(exc))
    if isinstance(exc, Forbidden):
        return MatrixError(403, "M_FORBIDDEN", str(exc))
    if isinstance(exc, RoomNotFound):
        return MatrixError(404, "M_NOT_FOUND", str(exc))
    if isinstance(exc, AliasInUse):
        return MatrixError(409, "M_UNKNOWN", str(exc))
    if isinstance(exc, UnsupportedVersion):
        return MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION", str(exc))
    if isinstance(exc, CanonicalJsonError):
        return bad_json(f"not valid in an event: {exc}")
    if isinstance(exc, InvalidRequest | InvalidToken):
        return invalid_param(str(exc))
    return None


def routing_error(exc: web.HTTPException) -> MatrixError | None:
    """aiohttp's own refusals (no route, wrong method, body over the limit) as the
    Matrix errors clients expect; None for anything else, which passes on."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return MatrixError(413, "M_TOO_LARGE", "request body too large")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MatrixError(405, "M_UNRECOGNIZED", "unrecognized request method for this endpoint")
    if isinstance(exc, web.HTTPNotFound):
        return MatrixError(404, "M_UNRECOGNIZED", "unrecognized request")
    return None
