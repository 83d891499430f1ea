"""Request helpers shared by the handlers: JSON bodies, access tokens, parameters.

Every integer a client sends passes through here, range-checked before it can
reach the database (SQLite and PostgreSQL integers are signed 64-bit; a larger
one is an ``OverflowError`` deep inside the driver, i.e. a 500): numbers in
the path or query through ``parse_int``/``int_query``, numbers in a JSON body
through ``parse_request_json``, which keeps them in the canonical JSON range
(spec Appendices, "Canonical JSON": [-(2**53)+1, 2**53-1]).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from directory.client_address import TrustedProxies
from directory.db import Database
from messenger import jsonenc
from messenger.api.errors import MatrixError, bad_json, invalid_param
from messenger.events.canonical import (
    MAX_SAFE_INTEGER,
    MIN_SAFE_INTEGER,
    CanonicalJsonError,
    check_canonical_value,
    parse_json,
)
from messenger.identity import Requester
from messenger.limits import MessengerLimits
from messenger.rooms.service import RoomService
from messenger.sessions import Sessions
from messenger.sync.builder import SyncBuilder

if TYPE_CHECKING:
    from directory.service import Directory
    from messenger.e2ee import DeviceMessaging
    from messenger.ephemeral import Receipts, TypingTracker
    from messenger.federation_keys import RemoteKeys
    from messenger.media import MediaRepository
    from messenger.ratelimit import RateLimiter
    from messenger.school_rooms import SchoolRooms
    from messenger.user_directory import UserDirectory


@dataclass(frozen=True)
class ApiContext:
    """What the handlers work with; one per server instance (stored on the app)."""

    server_name: str
    sessions: Sessions
    rooms: RoomService
    sync: SyncBuilder
    limits: MessengerLimits
    db: Database
    directory: Directory
    typing: TypingTracker
    receipts: Receipts
    e2ee: DeviceMessaging
    limiter: RateLimiter
    users: UserDirectory
    school_rooms: SchoolRooms  # group members rejoin their rooms
    media: MediaRepository | None = None  # None without a data folder
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)
    push_gateways: tuple[str, ...] = ()  # the notify URLs pushers may use
    # Other servers' users' keys for /keys/query and /keys/claim; None: no federation.
    remote_keys: RemoteKeys | None = None
    # Told when a pusher is set or removed (the push sender's PusherOwners).
    pushers_changed: Callable[[], None] = lambda: None


CONTEXT = web.AppKey("messenger_context", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def ok(body: Any = None, status: int = 200) -> web.Response:
    return web.Response(body=jsonenc.dumps({} if body is None else body), status=status,
                        content_type="application/json", charset="utf-8")


# The widest integer the storage layer holds (signed 64-bit in SQLite and PostgreSQL).
MAX_STORED_INT = 2**63 - 1
MAX_INT_DIGITS = 19  # len(str(MAX_STORED_INT)); longer text is refused before int()


def parse_int(text: str, name: str, *, low: int = 0, high: int = MAX_STORED_INT) -> int:
    """A decimal integer from a path or query parameter, within [low, high].

    Only ASCII digits with an optional minus sign (``int()`` alone would take
    "\u0661", " 1_0 " and 4,000-digit numbers); anything else, or a number
    out of range, is 400 M_INVALID_PARAM naming the parameter.
    """
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit() and len(digits) <= MAX_INT_DIGITS):
        raise invalid_param(f"{name} must be an integer")
    value = int(text)
    if not low <= value <= high:
        raise invalid_param(f"{name} must be between {low} and {high}")
    return value


# Spec Appendices "Identifier Grammar": room, event and user ids, event types and
# the like are at most 255 bytes, and the storage columns are that wide.
MAX_PATH_PARAM_BYTES = 255
UNBOUNDED_PATH_PARAMS = frozenset({"file_name", "tail"})  # media names, never stored


def check_path_params(request: web.Request) -> None:
    """400 M_INVALID_PARAM for a path parameter longer than any identifier may be
    (it would otherwise reach a VARCHAR(255) column: a PostgreSQL error, a 500),
    and for a NUL in a path or query parameter (PostgreSQL text cannot hold it)."""
    for name, value in request.match_info.items():
        if name not in UNBOUNDED_PATH_PARAMS and len(value.encode()) > MAX_PATH_PARAM_BYTES:
            raise invalid_param(f"{name} is longer than {MAX_PATH_PARAM_BYTES} bytes")
        if "\x00" in value:  # PostgreSQL text cannot hold NUL: an asyncpg error, a 500
            raise invalid_param(f"{name} contains a NUL character")
    if any("\x00" in value for value in request.query.values()):
        raise invalid_param("a query parameter contains a NUL character")


def _bounded_json_int(text: str) -> int:
    if len(text.lstrip("-")) > 16:  # 2**53 has 16 digits: longer is out of range anyway
        raise CanonicalJsonError("integer out of range")
    value = int(text)
    if not MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise CanonicalJsonError(f"integer out of range: {value}")
    return value


def parse_request_json(raw: bytes | str) -> Any:
    """JSON from a client: strict (no NaN), integers in the canonical JSON range.

    Raises ``MatrixError`` 400: M_BAD_JSON for an out-of-range integer, M_NOT_JSON
    for anything unparsable.
    """
    try:
        value = parse_json(raw, parse_int=_bounded_json_int)
    except CanonicalJsonError as exc:
        if "out of range" in str(exc):
            raise bad_json(f"the request body is not acceptable JSON: {exc}") from None
        raise MatrixError(400, "M_NOT_JSON", "the request body is not valid JSON") from None
    except ValueError:
        raise MatrixError(400, "M_NOT_JSON", "the request body is not valid JSON") from None
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    if _UNSTORABLE_ESCAPE.search(text) and _has_unstorable_string(value):
        raise bad_json("the request body has a lone surrogate or a NUL in a string")
    return value


# "\u0000" and lone surrogate escapes ("\ud800") parse to strings that cannot be
# stored: PostgreSQL text has no NUL, and a surrogate cannot be encoded as UTF-8.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _has_unstorable_string(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_has_unstorable_string(k) or _has_unstorable_string(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable_string(v) for v in value)
    return False


async def body_not_kept(request: web.Request, limit: int) -> bytes:
    """The request body, read without ``request.read()``'s copy on the request: a
    long-poll that waits for minutes should not hold its body all that time.
    Over ``limit`` bytes: 413 M_TOO_LARGE, as aiohttp's own limit answers."""
    if request.content_length is not None and request.content_length > limit:
        raise MatrixError(413, "M_TOO_LARGE", "the request body is too large")
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise MatrixError(413, "M_TOO_LARGE", "the request body is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(raw: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    """``raw`` as a JSON object, with ``json_body``'s errors."""
    if not raw.strip() and allow_empty:
        return {}
    value = parse_request_json(raw)
    if not isinstance(value, dict):
        raise bad_json("the request body must be a JSON object")
    return value


async def json_body(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object: M_NOT_JSON if unparsable, M_BAD_JSON if not an object
    or if it holds an integer outside the canonical JSON range."""
    return json_object(await request.read(), allow_empty=allow_empty)


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
        token = header[len("Bearer "):].strip() or None
    else:
        token = request.query.get("access_token") or None
    # Our tokens are printable ASCII; anything else (undecodable header bytes
    # arrive as surrogates) is no token of ours, not a reason to fail hashing it.
    if token is not None and not (token.isascii() and token.isprintable()):
        raise MatrixError(401, "M_UNKNOWN_TOKEN", "unrecognised access token")
    return token


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
    """An integer query parameter clamped into [low, high] (limits and timeouts are
    hints the server may lower); not an integer or outside 64 bits: M_INVALID_PARAM."""
    text = request.query.get(key)
    if text is None:
        return default
    value = parse_int(text, key, low=-MAX_STORED_INT - 1)
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
