"""GET /sync and the filter endpoints (spec: Client-Server API 8.1, 8.1.2)."""

from __future__ import annotations

from aiohttp import web

from messenger.api.errors import MatrixError, invalid_param
from messenger.api.http import (
    context,
    int_query,
    json_body,
    ok,
    own_user,
    parse_int,
    parse_request_json,
    requester,
)
from messenger.storage import user_data
from messenger.sync.builder import SyncRequest
from messenger.sync.filters import SyncFilter, parse_filter, validate_filter
from messenger.sync.tokens import InvalidToken, SyncToken

# matrix_filters.filter_id is a 32-bit INTEGER column: a larger id cannot exist, and
# PostgreSQL refuses to even compare with one (an error, not "no row").
MAX_FILTER_ID = 2**31 - 1


async def _filter(request: web.Request, account_id: int) -> SyncFilter:
    text = request.query.get("filter")
    if not text:
        return SyncFilter()
    if text.lstrip().startswith("{"):
        # Clients send the same inline filter with every poll: parse it once.
        known = context(request).sync.inline_filters
        if (parsed := known.get(text)) is not None:
            return parsed
        try:
            parsed = parse_filter(parse_request_json(text))
        except MatrixError as exc:
            raise invalid_param(f"filter is not acceptable JSON: {exc.message}") from None
        if len(known) >= 1000:
            known.clear()
        known[text] = parsed
        return parsed
    filter_id = parse_int(text, "filter", high=MAX_FILTER_ID)
    async with context(request).db.read() as session:
        definition = await user_data.get_filter(session, account_id, filter_id)
    if definition is None:
        raise invalid_param(f"unknown filter {text}")
    return parse_filter(definition)


async def sync(request: web.Request) -> web.Response:
    who = await requester(request)
    ctx = context(request)
    since_text = request.query.get("since")
    try:
        since = SyncToken.parse(since_text) if since_text else None
    except InvalidToken as exc:
        raise invalid_param(str(exc)) from None
    full_state = request.query.get("full_state", "false").lower() == "true"
    timeout = int_query(request, "timeout", 0, high=ctx.limits.max_sync_timeout_ms)
    sync_filter = await _filter(request, who.account_id)
    return ok(await ctx.sync.sync(who, SyncRequest(since, timeout, full_state, sync_filter)))


async def create_filter(request: web.Request) -> web.Response:
    who = await requester(request)
    own_user(request, who)
    definition = validate_filter(await json_body(request))
    async with context(request).db.write() as session:
        filter_id = await user_data.add_filter(session, who.account_id, definition)
    return ok({"filter_id": str(filter_id)})


async def get_filter(request: web.Request) -> web.Response:
    who = await requester(request)
    own_user(request, who)
    text = request.match_info["filter_id"]
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_FILTER_ID))
            and int(text) <= MAX_FILTER_ID):
        raise MatrixError(404, "M_NOT_FOUND", "unknown filter")  # no such id can exist
    filter_id = int(text)
    async with context(request).db.read() as session:
        definition = await user_data.get_filter(session, who.account_id, filter_id)
    if definition is None:
        raise MatrixError(404, "M_NOT_FOUND", "unknown filter")
    return ok(definition)


def routes(prefix: str) -> list[web.RouteDef]:
    return [
        web.get(f"{prefix}/sync", sync),
        web.post(f"{prefix}/user/{{user_id}}/filter", create_filter),
        web.get(f"{prefix}/user/{{user_id}}/filter/{{filter_id}}", get_filter),
    ]
