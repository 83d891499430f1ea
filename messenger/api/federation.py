"""The Server-Server API listener's application: thin handlers for
``/_matrix/key/v2/*`` and ``/_matrix/federation/*`` (Matrix Server-Server API).

Every ``/_matrix/federation/*`` request except ``/version`` must carry a valid
``X-Matrix`` signature of a server the school federates with (its partner
schools and the servers the admin lists); others get 401 ``M_UNAUTHORIZED`` or
403 ``M_FORBIDDEN`` with the reason, and the refusal is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from directory.model import NotFound
from directory.service import Directory
from federation.matrix.canonical_json import CanonicalJsonError, parse_json
from federation.matrix.keyring import KeyNotFound, KeyRing
from federation.matrix.outbox import MAX_EDUS_PER_TXN, MAX_PDUS_PER_TXN
from federation.matrix.received import PendingRecord, ReceivedTransactions
from federation.matrix.request_auth import (
    AuthorizationError,
    parse_authorization,
    verify_request,
)
from federation.matrix.server_keys import publish_keys
from federation.matrix.signed_json import SigningKey
from messenger.api import federation_keys
from messenger.api.errors import MatrixError, routing_error
from messenger.api.http import check_path_params
from messenger.events.identifiers import InvalidIdentifier, UserId
from messenger.federation_edus import split_edus
from messenger.federation_keys import LocalKeys
from messenger.media import MediaRepository
from messenger.rooms.resident import ResidentRooms

log = logging.getLogger("schulhof.messenger.federation")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_FEDERATION_REQUEST_BYTES = 4 * 1024 * 1024
SERVER_SOFTWARE = {"name": "Schulhof", "version": "0.1.0"}


MAX_TXN_ID_LENGTH = 255


class EduHandler(Protocol):
    """Where the EDUs of a received transaction go (``messenger.federation_edus``)."""

    async def receive(self, origin: str, edus: list[Mapping[str, Any]]) -> None:
        """Process them; never raises for one bad EDU."""


class TransactionHandler(Protocol):
    """Where the PDUs and EDUs of a received transaction go (the rooms' side)."""

    async def receive(self, origin: str, pdus: list[Mapping[str, Any]],
                      edus: list[Mapping[str, Any]], record: PendingRecord | None = None
                      ) -> dict[str, dict[str, Any]]:
        """Process them; the result per event id (``{}`` or ``{"error": ...}``).
        ``record``: the transaction's record, to commit with the PDUs if it can
        (``{"pdus": <the result>}``, then ``record.written``)."""


@dataclass(frozen=True)
class FederationContext:
    server_name: str
    signing_key: SigningKey
    keyring: KeyRing
    directory: Directory
    allowed: Callable[[str], bool]
    received: ReceivedTransactions
    transactions: TransactionHandler
    key_validity_ms: int = 24 * 3600 * 1000
    # End-to-end keys of this school's users (messenger.api.federation_keys).
    local_keys: LocalKeys | None = None
    # The school's files for other servers (messenger.api.federation_media).
    media: MediaRepository | None = None
    # Typing, receipts, to-device, device lists (EDUs); None: they are dropped.
    edus: EduHandler | None = None
    # The rooms' resident side (joins, invites, event retrieval); None: not served.
    rooms: ResidentRooms | None = None
    # Called with the origin of every authenticated request: that server is up
    # (federation.matrix.sender ends its backoff).
    contacted: Callable[[str], None] | None = None
    # One transaction per origin at a time: a retry racing its original waits for
    # it and then gets the remembered answer.
    origin_locks: dict[str, asyncio.Lock] = field(default_factory=dict)


CONTEXT = web.AppKey("federation_context", FederationContext)
ORIGIN = web.RequestKey("federation_origin", str)  # the authenticated origin server


def _error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


def _refuse(request: web.Request, status: int, errcode: str, reason: str,
            origin: str = "-") -> web.Response:
    log.info("event=federation_refused origin=%s path=%s status=%d reason=%r",
             origin, request.path, status, reason)
    return _error(status, errcode, reason)


async def _authenticate(request: web.Request, ctx: FederationContext) -> str | web.Response:
    """The origin of a correctly signed request from an allowed server, or a refusal."""
    headers = request.headers.getall("Authorization", [])
    if not headers:
        return _refuse(request, 401, "M_UNAUTHORIZED", "X-Matrix Authorization required")
    body = await request.read()
    try:
        content: Any = parse_json(body) if body else None
    except (ValueError, CanonicalJsonError):
        return _refuse(request, 400, "M_NOT_JSON", "request body is not valid JSON")
    last_reason = "no valid X-Matrix Authorization header"
    for header in headers:
        try:
            auth = parse_authorization(header)
        except AuthorizationError as exc:
            last_reason = str(exc)
            continue
        if not ctx.allowed(auth.origin):
            return _refuse(request, 403, "M_FORBIDDEN",
                           f"{auth.origin} is not a federation partner of "
                           f"{ctx.server_name}", auth.origin)
        try:
            public_key = await ctx.keyring.verify_key(auth.origin, auth.key_id)
            verify_request(auth, public_key, method=request.method, uri=request.raw_path,
                           own_name=ctx.server_name, content=content)
        except (KeyNotFound, AuthorizationError) as exc:
            last_reason = str(exc) or exc.__class__.__name__
            continue
        return auth.origin
    return _refuse(request, 401, "M_UNAUTHORIZED", last_reason)


@web.middleware
async def federation_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    try:
        if (request.path.startswith("/_matrix/federation/")
                and request.path != "/_matrix/federation/v1/version"):
            origin = await _authenticate(request, ctx)
            if isinstance(origin, web.Response):
                return origin
            request[ORIGIN] = origin
            if ctx.contacted is not None:
                ctx.contacted(origin)
        # Path parameters that no identifier can be (too long, a NUL) would reach
        # the database as they are: a clear 400 instead of a PostgreSQL error.
        check_path_params(request)
        return await handler(request)
    except MatrixError as exc:
        return web.json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        refusal = routing_error(exc)
        if refusal is None:
            raise
        return web.json_response(refusal.body(), status=refusal.status)
    except ConnectionResetError:
        raise  # the client went away (or was timed out): aiohttp drops it quietly
    except Exception:
        log.exception("event=federation_request_failed path=%s", request.path)
        return _error(500, "M_UNKNOWN", "internal server error")


async def server_keys(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body = publish_keys(ctx.signing_key, ctx.server_name, int(time.time() * 1000),
                        ctx.key_validity_ms)
    return web.json_response(body)


async def version(request: web.Request) -> web.Response:
    return web.json_response({"server": SERVER_SOFTWARE})


async def query_profile(request: web.Request) -> web.Response:
    """``GET /_matrix/federation/v1/query/profile``: a local user's display name."""
    ctx = request.app[CONTEXT]
    try:
        user = UserId.parse(request.query.get("user_id", ""))
    except InvalidIdentifier:
        return _error(400, "M_INVALID_PARAM", "user_id is not a user id")
    if user.server != ctx.server_name:
        return _error(404, "M_NOT_FOUND", "not a user of this server")
    field = request.query.get("field")
    if field not in (None, "displayname", "avatar_url"):
        return _error(400, "M_INVALID_PARAM", "unknown profile field")
    try:
        account = await ctx.directory.get_account(user.localpart)
    except NotFound:
        return _error(404, "M_NOT_FOUND", "unknown user")
    if field == "avatar_url":
        return web.json_response({})
    return web.json_response({"displayname": account.display_name})


def _items(body: Mapping[str, Any], name: str, limit: int) -> list[Mapping[str, Any]] | str:
    items = body.get(name, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return f"{name} must be a list of objects"
    if len(items) > limit:
        return f"a transaction carries at most {limit} {name}"
    return items


async def send_transaction(request: web.Request) -> web.Response:
    """``PUT /_matrix/federation/v1/send/{txnId}``: PDUs and EDUs from another server,
    answered once per (origin, txn id)."""
    ctx = request.app[CONTEXT]
    origin = request[ORIGIN]
    txn_id = request.match_info["txn_id"]
    if len(txn_id) > MAX_TXN_ID_LENGTH:
        return _error(400, "M_INVALID_PARAM", "transaction id too long")
    try:
        body = parse_json(await request.read())
    except (ValueError, CanonicalJsonError):
        return _error(400, "M_NOT_JSON", "request body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "M_BAD_JSON", "a transaction is a JSON object")
    if body.get("origin", origin) != origin:
        return _refuse(request, 403, "M_FORBIDDEN", "origin does not match the signature",
                       origin)
    pdus = _items(body, "pdus", MAX_PDUS_PER_TXN)
    edus = _items(body, "edus", MAX_EDUS_PER_TXN)
    for problem in (pdus, edus):
        if isinstance(problem, str):
            return _refuse(request, 400, "M_BAD_JSON", problem, origin)
    assert not isinstance(pdus, str) and not isinstance(edus, str)
    lock = ctx.origin_locks.setdefault(origin, asyncio.Lock())
    async with lock:
        answer = await ctx.received.answer_of(origin, txn_id)
        if answer is None:
            # Key traffic first: a client shares the room key (to-device) before it
            # sends the message, and a busy sender may carry both in one
            # transaction; a client that got the message first could not decrypt
            # it.  Typing and receipts after the events they may refer to.
            before, after = split_edus(edus)
            if ctx.edus is not None:
                await ctx.edus.receive(origin, before)
            # The record commits with the PDUs unless EDUs are processed after them:
            # those would be lost if a crash came between that commit and them.
            record = PendingRecord(origin, txn_id) if not (after and ctx.edus) else None
            results = await ctx.transactions.receive(origin, pdus, edus, record)
            if ctx.edus is not None:
                await ctx.edus.receive(origin, after)
            answer = {"pdus": results}
            if record is None or not record.written:
                await ctx.received.remember(origin, txn_id, answer)
    return web.json_response(answer)


def build_federation_app(ctx: FederationContext) -> web.Application:
    app = web.Application(middlewares=[federation_middleware],
                          client_max_size=MAX_FEDERATION_REQUEST_BYTES)
    app[CONTEXT] = ctx
    app.add_routes([
        web.get("/_matrix/key/v2/server", server_keys),
        web.get("/_matrix/key/v2/server/{key_id}", server_keys),  # deprecated form
        web.get("/_matrix/federation/v1/version", version),
        web.get("/_matrix/federation/v1/query/profile", query_profile),
        web.put("/_matrix/federation/v1/send/{txn_id}", send_transaction),
    ])
    if ctx.local_keys is not None:
        federation_keys.install(app, ctx.local_keys)
    from messenger.api import federation_rooms  # its handlers use this module's keys

    app.add_routes(federation_rooms.routes())
    if ctx.media is not None:
        from messenger.api import federation_media  # it reads this module's ORIGIN

        federation_media.install(app, ctx.media)
    return app
