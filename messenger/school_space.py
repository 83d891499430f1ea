"""The school's space (spec: Client-Server API v1.12 "Spaces"): one room of type
``m.space`` per school, alias ``#schulhof:<domain>``, whose ``m.space.child``
events name every group room, kept in line on each run of the school rooms
(made with the first group room: a server without groups has no space).

The space is public and listed in the room directory, so every account finds it
under "Explore rooms" and its hierarchy shows each user the class rooms they
are in (``messenger.spaces`` hides the others).  Nobody is made to join it:
joining is the user's choice, and a space with every pupil in it would be one
membership event per account for nothing the class rooms do not already give.
Only the system user changes it (events and state need level 100).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from messenger.rooms.errors import AliasInUse
from messenger.rooms.presets import CreateRoomRequest, default_power_levels
from messenger.rooms.service import RoomService
from messenger.storage import aliases as alias_store
from messenger.storage import events as store

log = logging.getLogger("schulhof.messenger")

SPACE_ALIAS = "schulhof"
SPACE_NAME = "Schule"
SYSTEM_LEVEL = 100


class SchoolSpace:
    def __init__(self, rooms: RoomService, system_user: str, system_display_name: str) -> None:
        self._rooms = rooms
        self._system_user = system_user
        self._system_display_name = system_display_name
        self.alias = f"#{SPACE_ALIAS}:{rooms.server_name}"

    async def space_id(self) -> str | None:
        """The space, if the system user made it (None: not yet, or the alias is taken)."""
        async with self._rooms.db.read() as session:
            found = await alias_store.get(session, self.alias)
        return found.room_id if found is not None and found.creator == self._system_user \
            else None

    async def sync(self, room_ids: Iterable[str]) -> str | None:
        """Make the space if missing (once there is a group room to hold) and its
        children exactly ``room_ids``."""
        wanted = set(room_ids)
        space = await self.space_id()
        if space is None:
            if not wanted:
                return None
            space = await self._create()
            if space is None:
                return None
        async with self._rooms.db.read() as session:
            state = await store.current_state(session, space)
        present = {key: event for (event_type, key), event in state.items()
                   if event_type == "m.space.child" and (event.pdu.get("content") or {}).get("via")}
        via = [self._rooms.server_name]
        for room_id in sorted(wanted - present.keys()):
            await self._rooms.append_as(self._system_user, space, "m.space.child",
                                        {"via": via}, state_key=room_id)
        for room_id in sorted(present.keys() - wanted):  # the group is gone
            await self._rooms.append_as(self._system_user, space, "m.space.child", {},
                                        state_key=room_id)
        return space

    async def _create(self) -> str | None:
        power = default_power_levels(self._system_user, "public_chat", ())
        power.update({"events_default": SYSTEM_LEVEL, "state_default": SYSTEM_LEVEL})
        request = CreateRoomRequest(
            preset="public_chat", is_public=True, name=SPACE_NAME,
            topic="Alle Klassen und Gruppen der Schule", room_alias_name=SPACE_ALIAS,
            creation_content={"type": "m.space"}, power_level_content_override=power)
        try:
            space = await self._rooms.create_room_as(self._system_user,
                                                     self._system_display_name, request)
        except AliasInUse:
            log.warning("event=school_space_alias_taken alias=%s", self.alias)
            return None
        log.info("event=school_space_created room=%s", space)
        return space
