"""Room aliases (spec: Client-Server API 10.2 "Room aliases"): resolving
``#name:server`` to a room id, and giving or taking a room's aliases."""

from __future__ import annotations

from directory.db import Database
from messenger.events.identifiers import InvalidIdentifier, is_room_id, parse_room_alias
from messenger.identity import Requester
from messenger.rooms.errors import AliasInUse, Forbidden, InvalidRequest, RoomNotFound
from messenger.rooms.lookups import room_power_levels, room_version_of
from messenger.storage import aliases as alias_store
from messenger.storage import events as store


class RoomAliases:
    def __init__(self, db: Database, server_name: str) -> None:
        self._db = db
        self._server_name = server_name

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if is_room_id(room_id_or_alias):
            return room_id_or_alias
        try:
            parse_room_alias(room_id_or_alias)
        except InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None
        async with self._db.read() as session:
            room_id = await alias_store.resolve(session, room_id_or_alias)
        if room_id is None:
            raise RoomNotFound(f"unknown room alias {room_id_or_alias}")
        return room_id

    async def create_alias(self, requester: Requester, alias: str, room_id: str) -> None:
        try:
            _local, server = parse_room_alias(alias)
        except InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None
        if server != self._server_name:
            raise InvalidRequest(f"aliases here must end in :{self._server_name}")
        async with self._db.write() as session:
            await room_version_of(session, room_id)
            row = await store.membership(session, room_id, requester.user_id)
            if row is None or row.membership != "join":
                raise Forbidden("only members of the room may give it an alias")
            if await alias_store.resolve(session, alias) is not None:
                raise AliasInUse(f"room alias {alias} already exists")
            await alias_store.create(session, alias, room_id, requester.user_id)

    async def delete_alias(self, requester: Requester, alias: str) -> None:
        async with self._db.write() as session:
            found = await alias_store.get(session, alias)
            if found is None:
                raise RoomNotFound(f"unknown room alias {alias}")
            if found.creator != requester.user_id:
                levels = await room_power_levels(session, found.room_id)
                if levels.user_level(requester.user_id) < levels.event_level(
                        "m.room.canonical_alias", True):
                    raise Forbidden("only the alias's creator or a moderator may remove it")
            await alias_store.delete(session, alias)

    async def alias_room(self, alias: str) -> str:
        return await self.resolve_room(alias)
