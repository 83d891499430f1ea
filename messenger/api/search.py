"""POST /search (spec: Client-Server API v1.12 "Server Side Search"), category
``room_events`` (the only category the spec defines)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from messenger.api.errors import bad_json, invalid_param
from messenger.api.http import CONTEXT, context, json_body, ok, requester
from messenger.render import render_events
from messenger.room_search import RoomSearch, search_words
from messenger.sync.tokens import InvalidToken, parse_position, room_token

ROOM_SEARCH = web.AppKey("messenger_room_search", RoomSearch)
DEFAULT_LIMIT = 10
MAX_LIMIT = 50
MAX_CONTEXT = 10
MAX_ROOMS_IN_FILTER = 1000
KEYS = ("content.body", "content.name", "content.topic")


def install(app: web.Application) -> None:
    app[ROOM_SEARCH] = RoomSearch(app[CONTEXT].db)


def _int_field(body: dict[str, Any], key: str, default: int, high: int, where: str) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_json(f"{where}.{key} must be an integer")
    return max(0, min(value, high))


@dataclass(frozen=True)
class SearchRequest:
    """A ``room_events`` search as the body asked for it (``term`` "" finds nothing)."""

    term: str
    rooms: list[str] | None
    limit: int
    with_context: bool
    context_before: int
    context_after: int
    before: int | None


def parse_search(body: dict[str, Any], next_batch: str | None) -> SearchRequest | None:
    """The request, or None when it names no ``room_events`` category; raises
    ``MatrixError`` 400 (M_BAD_JSON, M_INVALID_PARAM for ``next_batch``) otherwise."""
    categories = body.get("search_categories")
    if not isinstance(categories, dict):
        raise bad_json("search_categories must be an object")
    criteria = categories.get("room_events")
    if criteria is None:
        return None
    if not isinstance(criteria, dict):
        raise bad_json("room_events must be an object")
    term = criteria.get("search_term")
    if not isinstance(term, str):
        raise bad_json("search_term must be a string")
    keys = criteria.get("keys", list(KEYS))
    if not isinstance(keys, list) or any(k not in KEYS for k in keys):
        raise bad_json(f"keys must be a list of {', '.join(KEYS)}")
    if criteria.get("order_by", "rank") not in ("rank", "recent"):
        raise bad_json("order_by must be rank or recent")
    room_filter = criteria.get("filter")
    room_filter = {} if room_filter is None else room_filter
    if not isinstance(room_filter, dict):
        raise bad_json("filter must be an object")
    rooms = room_filter.get("rooms")
    if rooms is not None and (not isinstance(rooms, list) or len(rooms) > MAX_ROOMS_IN_FILTER
                              or not all(isinstance(r, str) for r in rooms)):
        raise bad_json("filter.rooms must be a list of room ids")
    limit = _int_field(room_filter, "limit", DEFAULT_LIMIT, MAX_LIMIT, "filter") or 1
    event_context = criteria.get("event_context")
    if event_context is not None and not isinstance(event_context, dict):
        raise bad_json("event_context must be an object")
    before_n = _int_field(event_context or {}, "before_limit", 5, MAX_CONTEXT, "event_context")
    after_n = _int_field(event_context or {}, "after_limit", 5, MAX_CONTEXT, "event_context")
    before = None
    if next_batch is not None:
        try:
            before = parse_position(next_batch)
        except InvalidToken as exc:
            raise invalid_param(f"next_batch: {exc}") from None
    # Only message bodies are indexed: a search over names or topics alone finds nothing.
    return SearchRequest(term if "content.body" in keys else "", rooms, limit,
                         event_context is not None, before_n, after_n, before)


async def search(request: web.Request) -> web.Response:
    who = await requester(request)
    asked = parse_search(await json_body(request), request.query.get("next_batch"))
    if asked is None:
        return ok({"search_categories": {}})
    page = await request.app[ROOM_SEARCH].search(
        who.user_id, asked.term, rooms=asked.rooms, before=asked.before, limit=asked.limit,
        context_before=asked.context_before if asked.with_context else 0,
        context_after=asked.context_after if asked.with_context else 0)
    results = []
    async with context(request).db.read() as session:
        rendered = await render_events(session, who, [h.event for h in page.hits])
        for hit, event in zip(page.hits, rendered, strict=True):
            result: dict[str, Any] = {"rank": 1.0, "result": event}
            if asked.with_context:
                result["context"] = {
                    "events_before": await render_events(session, who, hit.before),
                    "events_after": await render_events(session, who, hit.after),
                    "start": room_token((hit.before[-1] if hit.before else hit.event)
                                        .stream_ordering - 1),
                    "end": room_token((hit.after[-1] if hit.after else hit.event)
                                      .stream_ordering),
                    "profile_info": {},
                }
            results.append(result)
    out: dict[str, Any] = {"results": results, "highlights": search_words(asked.term)}
    if page.next_position is not None:
        out["next_batch"] = room_token(page.next_position)
    else:
        out["count"] = len(results)
    return ok({"search_categories": {"room_events": out}})


def routes(prefix: str) -> list[web.RouteDef]:
    return [web.post(f"{prefix}/search", search)]
