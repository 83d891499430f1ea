"""Request helpers shared by the handlers: JSON bodies, access tokens, parameters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from directory.client_address import TrustedProxies
from messenger import jsonenc
from messenger.api.errors import MatrixError, bad_json, invalid_param
from messenger.events.canonical import CanonicalJsonError, check_canonical_value, parse_json
from messenger.identity import Requester
from messenger.limits import MessengerLimits
from messenger.rooms.service import RoomService
from messenger.sessions import Sessions
from messenger.sync.builder import SyncBuilder


@dataclass(frozen=True)
class ApiContext:
    """What the handlers work with; one per server instance (stored on the app)."""

    server_name: str
    sessions: Sessions
    rooms: RoomService
    sync: SyncBuilder
    limits: MessengerLimits
    db: Any
    directory: Any
    media: Any = None  # messenger.media.MediaRepository, or None without a data folder
    typing: Any = None  # messenger.ephemeral.TypingTracker
    receipts: Any = None  # messenger.ephemeral.Receipts
    e2ee: Any = None  # messenger.e2ee.DeviceMessaging
    limiter: Any = None  # messenger.ratelimit.RateLimiter
    users: Any = None  # messenger.user_directory.UserDirectory
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)
    push_gateways: tuple[str, ...] = ()  # the notify URLs pushers may use


CONTEXT = web.AppKey("messenger_context", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def ok(body: Any = None, status: int = 200) -> web.Response:
    return web.Response(body=jsonenc.dumps({} if body is None else body), status=status,
                        content_type="application/json", charset="utf-8")


async def json_body(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object: M_NOT_JSON if unparsable, M_BAD_JSON if not an object."""
    raw = await request.read()
    if not raw.strip() and allow_empty:
        return {}
    try:
        value = parse_json(raw)
    except (ValueError, CanonicalJsonError):
        raise MatrixError(400, "M_NOT_JSON", "the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise bad_json("the request body must be a JSON object")
    return value


def event_content(body: dict[str, Any], limits: MessengerLimits) -> dict[str, Any]:
    """Event content checked for canonical JSON (integers only) and size."""
    try:
        check_canonical_value(body)
    except CanonicalJsonError as exc:
        raise bad_json(f"content is not valid in an event: {exc}") from None
    size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
    if size > limits.max_event_bytes:
        raise MatrixError(413, "M_TOO_LARGE", f"event content too large ({size} bytes)")
    return body


def access_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer "):].strip() or None
    return request.query.get("access_token") or None


async def requester(request: web.Request) -> Requester:
    token = access_token(request)
    if token is None:
        raise MatrixError(401, "M_MISSING_TOKEN", "missing access token")
    ctx = context(request)
    who = await ctx.sessions.requester(token)
    await ctx.sessions.seen(who, request.remote)
    return who


def string_field(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise bad_json(f"{key} must be a string")
    return value


def int_query(request: web.Request, key: str, default: int, *, low: int = 0,
              high: int | None = None) -> int:
    text = request.query.get(key)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise invalid_param(f"{key} must be an integer") from None
    value = max(low, value)
    return min(value, high) if high is not None else value


def own_user(request: web.Request, who: Requester) -> None:
    if request.match_info.get("user_id") != who.user_id:
        raise MatrixError(403, "M_FORBIDDEN", "you can only change your own data")


def rate_limit(request: web.Request, action: str, who: Requester | None = None) -> None:
    """Charge one request of ``action`` to the user and the client address (429 if spent)."""
    limiter = context(request).limiter
    if limiter is not None:
        limiter.check(action, who.user_id if who is not None else None, request.remote)
