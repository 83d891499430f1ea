"""The aiohttp application of the Client-Server API: routes, CORS, errors.

Middlewares, outermost first: CORS (every response, and OPTIONS preflight on
any path answered before routing, spec 2.3 "Web Browser Clients"), then the
error translation (domain errors -> Matrix errcodes; unknown endpoints ->
M_UNRECOGNIZED; oversized bodies -> M_TOO_LARGE; a path parameter longer than
an identifier may be -> M_INVALID_PARAM; bugs -> M_UNKNOWN 500 with the trace
only in our log).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from directory.client_address import TrustedProxies
from messenger.api import (
    account,
    cross_signing,
    discovery,
    key_backup,
    keys,
    login,
    media,
    not_offered,
    notifications,
    push_rule_edits,
    pushers,
    relations,
    room_extras,
    rooms,
    search,
    sliding_sync,
    spec_versions,
    sync,
    tags,
    user,
)
from messenger.api.errors import MatrixError, matrix_error_for, routing_error
from messenger.api.http import CONTEXT, ApiContext, check_path_params, ok
from messenger.cross_signing import CrossSigning
from messenger.key_backup import KeyBackup

log = logging.getLogger("schulhof.messenger")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
    "Access-Control-Max-Age": "86400",
}
PREFIXES = ("/_matrix/client/v3", "/_matrix/client/r0")


def forwarded_middleware(proxies: TrustedProxies) -> Callable[..., Awaitable[web.StreamResponse]]:
    """``request.remote`` is the client behind a trusted reverse proxy
    (directory.client_address), for the login throttle and the rate limits."""
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if proxies.networks and request.remote:
            client = proxies.client_address(request.remote,
                                            request.headers.getall("X-Forwarded-For", []))
            if client != request.remote:
                request = request.clone(remote=client)
        return await handler(request)
    return middleware


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.json_response({}, headers=CORS_HEADERS)
    response = await handler(request)
    response.headers.update(CORS_HEADERS)
    return response


def _error_response(error: MatrixError) -> web.Response:
    return web.json_response(error.body(), status=error.status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        check_path_params(request)
        return await handler(request)
    except web.HTTPException as exc:
        refusal = routing_error(exc)
        if refusal is None:
            raise
        return _error_response(refusal)
    except ConnectionResetError:
        raise  # the client went away (or was timed out): aiohttp drops it quietly
    except Exception as exc:
        error = matrix_error_for(exc)
        if error is None:
            log.exception("event=matrix_request_failed method=%s path=%s", request.method,
                          request.path)
            error = MatrixError(500, "M_UNKNOWN", "internal server error")
        return _error_response(error)


async def empty_object(request: web.Request) -> web.Response:
    return ok()


def build_app(context: ApiContext) -> web.Application:
    app = web.Application(middlewares=[forwarded_middleware(context.trusted_proxies),
                                       cors_middleware, error_middleware],
                          client_max_size=context.limits.max_request_bytes)
    app[CONTEXT] = context
    if context.media is not None:
        app[media.MEDIA_KEY] = context.media
    app[cross_signing.CROSS_SIGNING] = CrossSigning(context.db, context.sessions, context.e2ee)
    app[key_backup.KEY_BACKUP] = KeyBackup(context.db)
    for module in (relations, account, search, notifications, room_extras):
        module.install(app)  # each keeps its domain object on the app
    route_defs: list[web.RouteDef] = []
    seen: set[tuple[str, str]] = set()
    for prefix in PREFIXES:
        for module in (login, rooms, sync, user, pushers, push_rule_edits, keys,
                       cross_signing, key_backup, discovery, relations, tags, account, search,
                       notifications, room_extras, not_offered):
            for route in module.routes(prefix):
                if (route.method, route.path) not in seen:  # well-known etc. only once
                    seen.add((route.method, route.path))
                    route_defs.append(route)
        route_defs += [
            web.get(f"{prefix}/thirdparty/protocols", empty_object),
            web.get(f"{prefix}/voip/turnServer", empty_object),
        ]
    route_defs += sliding_sync.install(app, context)
    route_defs += media.routes(context)
    route_defs += not_offered.media_routes()
    app.add_routes(route_defs)
    app[spec_versions.SPEC_VERSIONS] = spec_versions.advertised(app)
    return app
