"""The user's past notifications (spec: Client-Server API v1.12 "Listing
Notifications", GET /notifications).

Computed when asked, from the same decisions the push sender makes
(``messenger.push.wants_push`` and the user's muted rooms): messages and invites
by others in the rooms the user is joined to (and the invites they got),
newest first.  A notification is
``read`` once the user's read receipt in its room is at or after it; it is a
highlight when it mentions the user (``m.mentions`` or the user id / login in
the body), which the rest of the push code does not evaluate yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from directory.db import Database
from messenger.push import MESSAGE_TYPES, is_muted, wants_push
from messenger.storage import events as store
from messenger.storage import timeline_queries as queries
from messenger.storage import user_data
from messenger.storage.events import StoredEvent

SCAN_CHUNK = 200
MAX_SCANNED = 5000


@dataclass(frozen=True)
class Notification:
    event: StoredEvent
    read: bool
    highlight: bool


@dataclass(frozen=True)
class NotificationPage:
    notifications: list[Notification]
    next_position: int | None


def mentions(event: StoredEvent, user_id: str) -> bool:
    content = event.pdu.get("content")
    if not isinstance(content, dict):
        return False
    explicit = content.get("m.mentions")
    if isinstance(explicit, dict):
        users = explicit.get("user_ids")
        return isinstance(users, list) and user_id in users
    body = content.get("body")
    login = user_id[1:].split(":", 1)[0]
    return isinstance(body, str) and (user_id in body or login.casefold() in body.casefold())


class Notifications:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(self, user_id: str, account_id: int, *, before: int | None, limit: int,
                   only_highlight: bool) -> NotificationPage:
        async with self._db.read() as session:
            newest = await store.max_stream_ordering(session)
            readable = {}
            for row in await store.memberships_of(session, user_id):
                if row.membership == "join":
                    readable[row.room_id] = newest
                elif row.membership == "invite":  # the invite itself is a notification
                    readable[row.room_id] = row.stream_ordering
            rules = await user_data.get_account_data(session, account_id, "", "m.push_rules")
            readable = {r: p for r, p in readable.items() if not is_muted(rules, r)}
            read_at = await queries.read_positions(session, user_id, list(readable))
            found: list[Notification] = []
            cursor, scanned, exhausted = before, 0, False
            while len(found) <= limit and scanned < MAX_SCANNED:
                chunk = await queries.events_by_others(
                    session, readable, user_id, [*MESSAGE_TYPES, "m.room.member"],
                    before=cursor, limit=SCAN_CHUNK)
                scanned += len(chunk)
                for event in chunk:
                    if not wants_push(event):
                        continue
                    if event.type == "m.room.member" and event.state_key != user_id:
                        continue
                    highlight = event.type == "m.room.member" or mentions(event, user_id)
                    if only_highlight and not highlight:
                        continue
                    found.append(Notification(
                        event, event.stream_ordering <= read_at.get(event.room_id, 0),
                        highlight))
                if len(chunk) < SCAN_CHUNK:
                    exhausted = True
                    break
                cursor = chunk[-1].stream_ordering
        more = len(found) > limit or not exhausted
        found = found[:limit]
        next_position = found[-1].event.stream_ordering if more and found else (
            cursor if more else None)
        return NotificationPage(found, next_position)

