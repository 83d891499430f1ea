"""GET /notifications (spec: Client-Server API v1.12 "Listing Notifications")."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from messenger.api.errors import invalid_param
from messenger.api.http import CONTEXT, context, int_query, ok, requester
from messenger.notifications import Notifications
from messenger.render import render_events
from messenger.sync.tokens import InvalidToken, parse_position, room_token

NOTIFICATIONS = web.AppKey("messenger_notifications", Notifications)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def install(app: web.Application) -> None:
    app[NOTIFICATIONS] = Notifications(app[CONTEXT].db)


async def notifications(request: web.Request) -> web.Response:
    who = await requester(request)
    only = request.query.get("only")
    if only not in (None, "", "highlight"):
        raise invalid_param("only must be highlight")
    before = None
    if text := request.query.get("from"):
        try:
            before = parse_position(text)
        except InvalidToken as exc:
            raise invalid_param(f"from: {exc}") from None
    page = await request.app[NOTIFICATIONS].page(
        who.user_id, before=before,
        limit=int_query(request, "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT),
        only_highlight=only == "highlight")
    async with context(request).db.read() as session:
        events = await render_events(session, who, [n.event for n in page.notifications])
    body: dict[str, Any] = {"notifications": [
        {"actions": ["notify", {"set_tweak": "highlight", "value": n.highlight}],
         "event": event, "read": n.read, "room_id": n.event.room_id,
         "ts": int(n.event.pdu.get("origin_server_ts", 0))}
        for n, event in zip(page.notifications, events, strict=True)]}
    if page.next_position is not None:
        body["next_token"] = room_token(page.next_position)
    return ok(body)


def routes(prefix: str) -> list[web.RouteDef]:
    return [web.get(f"{prefix}/notifications", notifications)]
