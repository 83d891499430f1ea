"""Room aliases (spec: Client-Server API 10.2 "Room aliases"): resolving
``#name:server`` to a room id, and giving or taking a room's aliases.

An alias of another server is asked of that server (Server-Server API "Room
aliases", ``GET /_matrix/federation/v1/query/directory``), if the school
federates with it; the answer names the servers to join the room through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from messenger.events.identifiers import (
    InvalidIdentifier,
    is_room_id,
    is_server_name,
    parse_room_alias,
)
from messenger.identity import Requester
from messenger.rooms.errors import AliasInUse, Forbidden, InvalidRequest, RoomNotFound
from messenger.rooms.lookups import room_power_levels, room_version_of
from messenger.rooms.receiving import joined_servers
from messenger.rooms.remote_requests import RemoteRefused
from messenger.storage import aliases as alias_store
from messenger.storage import events as store

MAX_ALIAS_SERVERS = 20


@dataclass(frozen=True)
class AliasTarget:
    """The room an alias names and servers likely to hold it (ours first if ours)."""

    room_id: str
    servers: tuple[str, ...]


class DirectoryQueries(Protocol):
    """``messenger.rooms.remote_requests.RemoteRooms``."""

    async def query_directory(self, server: str, alias: str) -> dict[str, Any]: ...


async def local_alias_target(session: AsyncSession, alias: str,
                             server_name: str) -> AliasTarget | None:
    """A local alias's room and the servers with members in it, this one first."""
    room_id = await alias_store.resolve(session, alias)
    if room_id is None:
        return None
    others = sorted(await joined_servers(session, room_id) - {server_name})
    return AliasTarget(room_id, (server_name, *others[:MAX_ALIAS_SERVERS - 1]))


def alias_target_from(answer: dict[str, Any], server: str, alias: str) -> AliasTarget:
    """A ``/query/directory`` answer, checked; ``RemoteRefused`` if it is nonsense."""
    room_id = answer.get("room_id")
    servers = answer.get("servers")
    if not is_room_id(room_id) or not isinstance(servers, list):
        raise RemoteRefused(f"{server} answered {alias} without a room id and servers")
    named = [s for s in servers if is_server_name(s)][:MAX_ALIAS_SERVERS]
    return AliasTarget(str(room_id), tuple(dict.fromkeys([*named, server])))


class RoomAliases:
    def __init__(self, db: Database, server_name: str) -> None:
        self._db = db
        self._server_name = server_name
        # Set when the school federates: where other servers' aliases are asked.
        self.remote: DirectoryQueries | None = None
        self.federates_with: Callable[[str], bool] | None = None

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if is_room_id(room_id_or_alias):
            return room_id_or_alias
        return (await self.lookup(room_id_or_alias)).room_id

    def is_remote_alias(self, text: str) -> bool:
        """Whether ``text`` is an alias of another server."""
        try:
            return parse_room_alias(text)[1] != self._server_name
        except InvalidIdentifier:
            return False

    async def lookup(self, alias: str) -> AliasTarget:
        """The room ``alias`` names and the servers to reach it through (Client-Server
        API ``GET /directory/room/{roomAlias}``); another server's alias is asked
        over federation."""
        try:
            _local, server = parse_room_alias(alias)
        except InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None
        if server != self._server_name:
            return await self._ask(server, alias)
        async with self._db.read() as session:
            target = await local_alias_target(session, alias, self._server_name)
        if target is None:
            raise RoomNotFound(f"unknown room alias {alias}")
        return target

    async def _ask(self, server: str, alias: str) -> AliasTarget:
        if self.remote is None or self.federates_with is None:
            raise RoomNotFound(f"unknown room alias {alias} (this school has no Matrix "
                               "federation)")
        if not self.federates_with(server):
            raise Forbidden(f"{server} is not a federation partner of {self._server_name}")
        try:
            return alias_target_from(await self.remote.query_directory(server, alias),
                                     server, alias)
        except RemoteRefused as exc:
            if exc.status == 403:
                raise Forbidden(f"{server} refused: {exc}") from None
            raise RoomNotFound(f"unknown room alias {alias} ({server}: {exc})") from None

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
