"""The aiohttp application of the Client-Server API: routes, CORS, errors.

One middleware does, in this order: CORS preflight (OPTIONS on any path,
answered before routing, spec 2.3 "Web Browser Clients"); the client address
behind a trusted reverse proxy; the error translation (domain errors -> Matrix
errcodes; unknown endpoints -> M_UNRECOGNIZED; oversized bodies -> M_TOO_LARGE;
a path parameter longer than an identifier may be -> M_INVALID_PARAM; bugs ->
M_UNKNOWN 500 with the trace only in our log); the CORS headers on every
response; and it tells the ``RequestObserver`` (metrics) of each request.  One
and not one per concern: every waiting long-poll (thousands) holds a coroutine
frame per middleware for as long as it waits.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

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

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
    "Access-Control-Max-Age": "86400",
}
PREFIXES = ("/_matrix/client/v3", "/_matrix/client/r0")


class RequestObserver(Protocol):
    """Told of each request the API answers (metrics); must not block."""

    def started(self) -> None:
        """A request came in (answered or not yet)."""

    def finished(self, path: str, status: int, seconds: float) -> None:
        """It was answered with ``status`` (500: it failed or the client went away)."""


def _error_response(error: MatrixError) -> web.Response:
    return web.json_response(error.body(), status=error.status)


def api_middleware(proxies: TrustedProxies,
                   observer: RequestObserver | None = None) -> Middleware:
    """CORS, the client address, error translation and the observer, in one frame."""
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return web.json_response({}, headers=CORS_HEADERS)
        if proxies.networks and request.remote:
            client = proxies.client_address(request.remote,
                                            request.headers.getall("X-Forwarded-For", []))
            if client != request.remote:
                request = request.clone(remote=client)
        if observer is not None:
            observer.started()
            started = time.perf_counter()
        status = 500
        try:
            try:
                check_path_params(request)
                response = await handler(request)
            except web.HTTPException as exc:
                refusal = routing_error(exc)
                if refusal is None:
                    status = exc.status
                    raise
                response = _error_response(refusal)
            except ConnectionResetError:
                raise  # the client went away (or was timed out): aiohttp drops it quietly
            except Exception as exc:
                response = _error_response(_unexpected(request, exc))
            status = response.status
            response.headers.update(CORS_HEADERS)
            return response
        finally:
            if observer is not None:
                observer.finished(request.path, status, time.perf_counter() - started)
    return middleware


def _unexpected(request: web.Request, exc: Exception) -> MatrixError:
    """The Matrix error a domain exception stands for; a bug is a logged 500."""
    error = matrix_error_for(exc)
    if error is None:
        log.exception("event=matrix_request_failed method=%s path=%s", request.method,
                      request.path)
        error = MatrixError(500, "M_UNKNOWN", "internal server error")
    return error


async def empty_object(request: web.Request) -> web.Response:
    return ok()


def build_app(context: ApiContext,
              observer: RequestObserver | None = None) -> web.Application:
    app = web.Application(middlewares=[api_middleware(context.trusted_proxies, observer)],
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
