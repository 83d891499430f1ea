"""``POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync``: simplified
sliding sync (MSC4186), the only sync Element X (matrix-rust-sdk) speaks.

Query: ``pos`` (the connection's position; absent: a new connection) and
``timeout`` (long-poll, ms).  A ``pos`` the server does not know (expired,
from before a restart, malformed) is 400 ``M_UNKNOWN_POS``, after which
clients start the connection again without one.
"""

from __future__ import annotations

from aiohttp import web

from messenger.api.errors import MatrixError
from messenger.api.http import (
    ApiContext,
    body_not_kept,
    context,
    json_object,
    ok,
    parse_int,
    requester,
)
from messenger.sync.sliding import SlidingSync
from messenger.sync.sliding_connections import UnknownPosition
from messenger.sync.sliding_request import parse_request

PREFIX = "/_matrix/client/unstable/org.matrix.simplified_msc3575"
UNSTABLE_FEATURE = "org.matrix.simplified_msc3575"
SLIDING = web.AppKey("sliding_sync", SlidingSync)
MAX_PARSED_REQUESTS = 1000


async def sliding_sync(request: web.Request) -> web.Response:
    who = await requester(request)
    ctx = context(request)
    timeout_text = request.query.get("timeout")
    # A negative timeout is a client bug worth telling; a long one is clamped.
    timeout = 0 if timeout_text is None else min(
        parse_int(timeout_text, "timeout", low=0), ctx.limits.max_sync_timeout_ms)
    engine = request.app[SLIDING]
    # Apps send the same body with every poll: parse it once, and let thousands of
    # waiting connections share one parsed request instead of holding a copy each
    # (nor the body: it is not kept on the request, and gone before the wait).
    raw = await body_not_kept(request, ctx.limits.max_request_bytes)
    body = engine.parsed_requests.get(raw)
    if body is None:
        body = parse_request(json_object(raw, allow_empty=True),
                             ctx.limits.max_timeline_limit)
        if len(engine.parsed_requests) >= MAX_PARSED_REQUESTS:
            engine.parsed_requests.clear()
        engine.parsed_requests[raw] = body
    del raw
    try:
        result = await engine.sync(who, request.query.get("pos"), timeout, body)
    except UnknownPosition as exc:
        raise MatrixError(400, "M_UNKNOWN_POS", str(exc)) from None
    return ok(result.to_json())


def install(app: web.Application, ctx: ApiContext) -> list[web.RouteDef]:
    """The engine on the app (its connections live as long as the server), the route."""
    app[SLIDING] = SlidingSync(ctx.sync)
    return [web.post(f"{PREFIX}/sync", sliding_sync)]
