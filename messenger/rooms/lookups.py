"""Facts about a room that the room service's parts read inside their own
transaction: that it exists, its version, and its current power levels."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from messenger.events.room_versions import RoomVersion, room_version
from messenger.rooms.errors import RoomNotFound
from messenger.rooms.power import PowerLevels, power_levels
from messenger.storage import events as store
from messenger.storage.tables import RoomRow


async def existing_room(session: AsyncSession, room_id: str) -> RoomRow:
    """The room's row; ``RoomNotFound`` if there is no such room here."""
    row = await store.room(session, room_id)
    if row is None:
        raise RoomNotFound(f"unknown room {room_id}")
    return row


async def room_version_of(session: AsyncSession, room_id: str) -> RoomVersion:
    """The room's version; ``RoomNotFound`` if there is no such room here."""
    return room_version((await existing_room(session, room_id)).room_version)


async def room_power_levels(session: AsyncSession, room_id: str) -> PowerLevels:
    """The room's current power levels (they need its create event when none are set)."""
    state = {k: e.pdu for k, e in (await store.current_state(
        session, room_id, [("m.room.create", ""), ("m.room.power_levels", "")])).items()}
    return power_levels(state)
