"""Server-side search of room messages (spec: Client-Server API v1.12 "Server Side
Search", POST /search, category ``room_events``).

Only the user's rooms, and in each only what they may read (everything while
joined, up to the moment they left otherwise; nothing from before their arrival
where the room's current ``m.room.history_visibility`` is ``joined`` or
``invited``).  Encrypted rooms hold nothing
searchable here: their content is ciphertext.  Matching is by words: every word
of the search term must occur in the message's ``body`` (case-insensitive); the
database narrows the candidates, Python checks the body.  Results come newest
first, ``next_batch`` goes on below the last one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from directory.db import Database
from messenger.rooms.reading import readable_rooms
from messenger.storage import events as store
from messenger.storage import timeline_queries as queries
from messenger.storage.events import StoredEvent

MAX_WORDS = 8
SCAN_CHUNK = 200  # candidates read per round
MAX_SCANNED = 5000  # per request: a common word in a huge history stops here


@dataclass(frozen=True)
class SearchHit:
    event: StoredEvent
    before: list[StoredEvent]
    after: list[StoredEvent]


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    next_position: int | None


def search_words(term: str) -> list[str]:
    return [w for w in term.casefold().split() if w][:MAX_WORDS]


def _body_matches(event: StoredEvent, words: list[str]) -> bool:
    content = event.pdu.get("content")
    body = content.get("body") if isinstance(content, dict) else None
    if not isinstance(body, str):
        return False
    folded = body.casefold()
    return all(w in folded for w in words)


# History visibility (spec 11.15.2): what a member may read from before their arrival.
HIDDEN_BEFORE = {"joined": ("join",), "invited": ("invite", "join")}


async def history_floors(session: Any, user_id: str,
                         readable: dict[str, int]) -> dict[str, int]:
    """room -> first position the user may read, for rooms whose current
    ``m.room.history_visibility`` hides what came before the user's arrival."""
    floors = {}
    for room_id in readable:
        state = await store.current_state(session, room_id,
                                          [("m.room.history_visibility", "")])
        event = state.get(("m.room.history_visibility", ""))
        visibility = (event.pdu.get("content") or {}).get("history_visibility") \
            if event else None
        if visibility in HIDDEN_BEFORE:
            arrived = await queries.first_membership(session, room_id, user_id,
                                                     HIDDEN_BEFORE[visibility])
            floors[room_id] = arrived if arrived is not None else readable[room_id] + 1
    return floors


class RoomSearch:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def search(self, user_id: str, term: str, *, rooms: Iterable[str] | None,
                     before: int | None, limit: int, context_before: int,
                     context_after: int) -> SearchPage:
        words = search_words(term)
        if not words:
            return SearchPage([], None)
        async with self._db.read() as session:
            readable = await readable_rooms(session, user_id)
            if rooms is not None:
                wanted = set(rooms)
                readable = {r: p for r, p in readable.items() if r in wanted}
            floors = await history_floors(session, user_id, readable)
            # The database prefilter uses words whose JSON form is the word itself.
            plain = [w for w in words if w.isprintable() and '"' not in w and "\\" not in w]
            found: list[StoredEvent] = []
            cursor, scanned, exhausted = before, 0, False
            while len(found) <= limit and scanned < MAX_SCANNED:
                chunk = await queries.message_candidates(session, readable, plain,
                                                         before=cursor, limit=SCAN_CHUNK,
                                                         floors=floors)
                scanned += len(chunk)
                found += [e for e in chunk if _body_matches(e, words)]
                if len(chunk) < SCAN_CHUNK:
                    exhausted = True
                    break
                cursor = chunk[-1].stream_ordering
            more = len(found) > limit or not exhausted
            found = found[:limit]
            hits = []
            for event in found:
                upto = readable[event.room_id]
                earlier = await store.room_events(
                    session, event.room_id, after=0, upto=event.stream_ordering - 1,
                    limit=context_before, newest_first=True) if context_before else []
                later = await store.room_events(
                    session, event.room_id, after=event.stream_ordering, upto=upto,
                    limit=context_after, newest_first=False) if context_after else []
                hits.append(SearchHit(event, earlier, later))
        next_position = None
        if more and found:
            next_position = found[-1].stream_ordering
        elif more and cursor is not None:
            next_position = cursor  # nothing matched in this window: go on below it
        return SearchPage(hits, next_position)
