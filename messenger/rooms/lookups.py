"""Facts about a room that the room service's parts read inside their own
transaction: that it exists, its version, its current power levels and server ACL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from federation.matrix.server_acl import EVENT_TYPE as ACL_EVENT
from federation.matrix.server_acl import ServerAcl
from messenger.events.room_versions import RoomVersion, room_version
from messenger.rooms.errors import Forbidden, RoomNotFound
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


async def room_server_acl(session: AsyncSession, room_id: str) -> ServerAcl | None:
    """The room's current ``m.room.server_acl`` (None: the room has none, or is not
    known here)."""
    found = await store.current_state(session, room_id, [(ACL_EVENT, "")])
    event = found.get((ACL_EVENT, ""))
    content = event.pdu.get("content") if event is not None else None
    return ServerAcl.from_content(content) if isinstance(content, dict) else None


async def check_server_acl(session: AsyncSession, room_id: str, server: str) -> None:
    """Raise ``Forbidden`` if the room's server ACL denies ``server`` (Server-Server
    API "Server Access Control Lists": 403 ``M_FORBIDDEN``)."""
    acl = await room_server_acl(session, room_id)
    if acl is not None and not acl.allows(server):
        raise Forbidden(f"{server} is denied by the server ACL of {room_id}")
