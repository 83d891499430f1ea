"""Which of a room's events a user may see (spec: Client-Server API 11.2 "Room
History Visibility").

For an event, the room's ``m.room.history_visibility`` before it decides:

* ``world_readable``: anyone;
* ``shared``: members, and users who joined at any point after the event;
* ``invited``: users invited or joined at the event;
* ``joined``: users joined at the event.

A user's membership "at" an event counts their own membership event itself
(a joiner sees their join).  Without a visibility event the room is ``shared``
(the spec's default).  Visibility and membership change only at a few events,
so one read of those per request decides every event of a page.

Servers (Server-Server API "Room history visibility", as Synapse's
``filter_events_for_server``): an event is visible to a server if the setting
before it is ``world_readable`` or ``shared``, or one of the server's users was
joined at it (or invited, under ``invited``).  The per-user memberships come from
the same :class:`Visibility` as for clients.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from messenger.events.identifiers import server_of
from messenger.storage import timeline_queries as queries

DEFAULT = "shared"
# Below every position: history backfilled from other servers lies at zero and
# below (messenger.rooms.backfill).
FIRST_POSITION = -(2 ** 62)
# ``last_join`` of a user who never joined: below every position, backfilled ones
# included (0 would have let such a user see the history backfilled below 0).
NO_JOIN = FIRST_POSITION - 1
KNOWN = frozenset({"world_readable", "shared", "invited", "joined"})


@dataclass(frozen=True)
class Visibility:
    """One user's view of one room's history."""

    settings: tuple[tuple[int, str], ...]  # (position, history_visibility), ascending
    memberships: tuple[tuple[int, str], ...]  # the user's member events, ascending
    last_join: int  # position of the user's newest join, NO_JOIN if none

    def setting_before(self, position: int) -> str:
        at = bisect_left(self.settings, (position, "")) - 1
        return self.settings[at][1] if at >= 0 else DEFAULT

    def membership_at(self, position: int) -> str:
        at = bisect_right(self.memberships, (position, "\uffff")) - 1
        return self.memberships[at][1] if at >= 0 else "leave"

    def visible(self, position: int) -> bool:
        setting = self.setting_before(position)
        if setting == "world_readable":
            return True
        membership = self.membership_at(position)
        if membership == "join":
            return True
        if setting == "invited" and membership == "invite":
            return True
        return setting == "shared" and self.last_join > position

    def floor(self) -> int:
        """A position before which nothing is visible (pages stop there)."""
        points = sorted({FIRST_POSITION, *(p for p, _s in self.settings),
                         *(p - 1 for p, _m in self.memberships),
                         *((self.last_join - 1,) if self.last_join != NO_JOIN else ())})
        # Visibility is constant between these points: the first visible stretch.
        for point in points:
            if self.visible(point + 1):
                return point
        return points[-1]


async def visibility_of(session: AsyncSession, room_id: str, user_id: str) -> Visibility:
    settings = []
    for event in await queries.state_history(session, room_id, "m.room.history_visibility", ""):
        value = (event.pdu.get("content") or {}).get("history_visibility")
        # An unknown value is treated as the most private one the spec knows.
        settings.append((event.stream_ordering, value if value in KNOWN else "joined"))
    memberships = []
    for event in await queries.state_history(session, room_id, "m.room.member", user_id):
        value = (event.pdu.get("content") or {}).get("membership")
        memberships.append((event.stream_ordering, value if isinstance(value, str) else "leave"))
    last_join = max((p for p, m in memberships if m == "join"), default=NO_JOIN)
    return Visibility(tuple(settings), tuple(memberships), last_join)


@dataclass(frozen=True)
class ServerVisibility:
    """One server's view of one room's history: any of its users' memberships count."""

    users: tuple[Visibility, ...]
    settings: tuple[tuple[int, str], ...]

    def visible(self, position: int) -> bool:
        setting = Visibility(self.settings, (), NO_JOIN).setting_before(position)
        if setting in ("world_readable", "shared"):
            return True
        for user in self.users:
            membership = user.membership_at(position)
            if membership == "join" or (setting == "invited" and membership == "invite"):
                return True
        return False


async def server_visibility_of(session: AsyncSession, room_id: str,
                               server: str) -> ServerVisibility:
    users = []
    for user_id in await queries.member_state_keys(session, room_id):
        if server_of(user_id) == server:
            users.append(await visibility_of(session, room_id, user_id))
    settings = users[0].settings if users else \
        (await visibility_of(session, room_id, "")).settings
    return ServerVisibility(tuple(users), settings)
