"""Room tagging (spec: Client-Server API v1.12 "Room Tagging": GET/PUT/DELETE
/user/{userId}/rooms/{roomId}/tags[/{tag}]).

Tags live in the room's ``m.tag`` account data (``{"tags": {tag: {"order": n}}}``),
which /sync already delivers; these endpoints edit that one document.
Favourites (``m.favourite``), low priority (``m.lowpriority``) and the apps'
own tags (``u.*``, reverse-DNS names) are all just keys here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from messenger.api.errors import MatrixError, bad_json
from messenger.api.http import context, json_body, ok, own_user, requester
from messenger.storage import user_data

TAG_TYPE = "m.tag"
MAX_TAGS = 100  # per room: far more than any app shows


def _tags_of(content: Any) -> dict[str, Any]:
    tags = content.get("tags") if isinstance(content, dict) else None
    return dict(tags) if isinstance(tags, dict) else {}


async def get_tags(request: web.Request) -> web.Response:
    who = await requester(request)
    own_user(request, who)
    async with context(request).db.read() as session:
        content = await user_data.get_account_data(session, who.account_id,
                                                   request.match_info["room_id"], TAG_TYPE)
    return ok({"tags": _tags_of(content)})


async def _edit(request: web.Request, change: Callable[[dict[str, Any]], bool]) -> None:
    """Read, change and write the room's tags in one transaction (two apps of the
    user tagging at once must not lose a tag)."""
    who = await requester(request)
    own_user(request, who)
    ctx = context(request)
    room_id = request.match_info["room_id"]
    stream_id = None
    async with ctx.db.write() as session:
        tags = _tags_of(await user_data.get_account_data(session, who.account_id, room_id,
                                                         TAG_TYPE))
        if change(tags):
            if len(json.dumps(tags).encode()) > ctx.limits.max_event_bytes:
                raise MatrixError(413, "M_TOO_LARGE", "tags too large")
            stream_id = await user_data.put_account_data(session, who.account_id, room_id,
                                                         TAG_TYPE, {"tags": tags})
    if stream_id is not None:
        ctx.sync.account_data_changed(who.user_id, stream_id)


async def put_tag(request: web.Request) -> web.Response:
    body = await json_body(request, allow_empty=True)
    order = body.get("order")
    if order is not None and (isinstance(order, bool) or not isinstance(order, int | float)):
        raise bad_json("order must be a number")
    tag = request.match_info["tag"]

    def add(tags: dict[str, Any]) -> bool:
        if tag not in tags and len(tags) >= MAX_TAGS:
            raise bad_json(f"a room takes at most {MAX_TAGS} tags")
        tags[tag] = body
        return True

    await _edit(request, add)
    return ok()


async def delete_tag(request: web.Request) -> web.Response:
    tag = request.match_info["tag"]
    await _edit(request, lambda tags: tags.pop(tag, None) is not None)
    return ok()


def routes(prefix: str) -> list[web.RouteDef]:
    base = f"{prefix}/user/{{user_id}}/rooms/{{room_id}}/tags"
    return [
        web.get(base, get_tags),
        web.put(f"{base}/{{tag}}", put_tag),
        web.delete(f"{base}/{{tag}}", delete_tag),
    ]
