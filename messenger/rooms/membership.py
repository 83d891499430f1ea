"""Membership changes (spec: Client-Server API 10.4 "Room membership"): join,
invite, leave, kick, ban, unban and forget.  Each is an ``m.room.member`` event
the auth rules judge; invitations also pass the school's role policy.

With federation (``remote``): joining a room no user of this server is in goes
through another server (``make_join``/``send_join``), inviting a user of
another server through ``invite``, and declining such an invitation through
``make_leave``/``send_leave`` (``messenger.rooms.remote_membership``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from messenger.identity import Requester
from messenger.rooms.aliases import RoomAliases
from messenger.rooms.errors import Forbidden, InvalidRequest, RoomNotFound
from messenger.rooms.policy import ChatPolicy
from messenger.rooms.writer import RoomWriter
from messenger.storage import events as store

if TYPE_CHECKING:
    from messenger.rooms.remote_membership import RemoteMembership


class Membership:
    def __init__(self, writer: RoomWriter, aliases: RoomAliases, policy: ChatPolicy) -> None:
        self._writer = writer
        self._aliases = aliases
        self._policy = policy
        self.remote: RemoteMembership | None = None  # set when the school federates

    async def join(self, requester: Requester, room_id_or_alias: str,
                   servers: Sequence[str] = ()) -> str:
        if self.remote is not None and self._aliases.is_remote_alias(room_id_or_alias):
            # Another school's alias: that school names the room and where it lives.
            target = await self._aliases.lookup(room_id_or_alias)
            room_id_or_alias = target.room_id
            servers = [*servers, *target.servers]
        if self.remote is not None and room_id_or_alias.startswith("!") and \
                not await self.remote.is_resident(room_id_or_alias):
            room_id = room_id_or_alias
            await self.remote.join(requester.user_id, requester.account.display_name, room_id,
                                   [s for s in servers if self._reachable(s)])
            return room_id
        room_id = await self._aliases.resolve_room(room_id_or_alias)
        content = {"membership": "join", "displayname": requester.account.display_name}
        await self._writer.append(requester, requester.user_id, room_id, "m.room.member",
                                  content, state_key=requester.user_id)
        return room_id

    async def invite(self, requester: Requester, room_id: str, target: str,
                     reason: str | None = None, is_direct: bool = False) -> None:
        await self._policy.check_may_invite(requester.account, requester.user_id, target)
        content: dict[str, Any] = {"membership": "invite"}
        if reason:
            content["reason"] = reason
        if is_direct:
            content["is_direct"] = True
        if self._policy.is_remote(target):
            if self.remote is None:
                raise Forbidden(f"{target} is on another server and this school has no "
                                "Matrix federation")
            await self.remote.invite(requester.user_id, room_id, target, content)
            return
        await self._writer.append(requester, requester.user_id, room_id, "m.room.member",
                                  content, state_key=target)

    async def _set_membership(self, requester: Requester, room_id: str, target: str,
                              membership: str, reason: str | None) -> None:
        content: dict[str, Any] = {"membership": membership}
        if reason:
            content["reason"] = reason
        await self._writer.append(requester, requester.user_id, room_id, "m.room.member",
                                  content, state_key=target)

    async def leave(self, requester: Requester, room_id: str, reason: str | None = None) -> None:
        if self.remote is not None and not await self.remote.is_resident(room_id):
            async with self._writer.db.read() as session:
                row = await store.membership(session, room_id, requester.user_id)
            if row is not None and row.membership == "invite":
                await self.remote.reject_invite(requester.user_id, room_id, reason)
                return
        await self._set_membership(requester, room_id, requester.user_id, "leave", reason)

    async def leave_as(self, user_id: str, room_id: str, reason: str | None = None) -> None:
        """``user_id`` leaves the room, or declines the invitation, without a request of
        theirs (an erased account): an invitation to a room of another server is
        declined there (``make_leave``/``send_leave``) so that server's room does not
        keep it; everything else is a leave event here, sent to the room's servers."""
        if self.remote is not None and not await self.remote.is_resident(room_id):
            async with self._writer.db.read() as session:
                row = await store.membership(session, room_id, user_id)
            if row is not None and row.membership == "invite":
                await self.remote.reject_invite(user_id, room_id, reason)
                return
        content: dict[str, Any] = {"membership": "leave"}
        if reason:
            content["reason"] = reason
        await self._writer.append(None, user_id, room_id, "m.room.member", content,
                                  state_key=user_id)

    async def kick(self, requester: Requester, room_id: str, target: str,
                   reason: str | None = None) -> None:
        async with self._writer.db.read() as session:
            row = await store.membership(session, room_id, target)
        if row is None or row.membership not in ("join", "invite"):
            raise Forbidden(f"{target} is not in the room")
        await self._set_membership(requester, room_id, target, "leave", reason)

    async def ban(self, requester: Requester, room_id: str, target: str,
                  reason: str | None = None) -> None:
        await self._set_membership(requester, room_id, target, "ban", reason)

    async def unban(self, requester: Requester, room_id: str, target: str,
                    reason: str | None = None) -> None:
        async with self._writer.db.read() as session:
            row = await store.membership(session, room_id, target)
        if row is None or row.membership != "ban":
            raise Forbidden(f"{target} is not banned")
        await self._set_membership(requester, room_id, target, "leave", reason)

    async def forget(self, requester: Requester, room_id: str) -> None:
        async with self._writer.db.write() as session:
            row = await store.membership(session, room_id, requester.user_id)
            if row is None:
                raise RoomNotFound(f"you were never in {room_id}")
            if row.membership in ("join", "invite"):
                raise InvalidRequest("leave the room before forgetting it")
            await store.set_forgotten(session, room_id, requester.user_id)
        if self._writer.cache is not None:
            self._writer.cache.forget_memberships(requester.user_id)

    def _reachable(self, server: str) -> bool:
        check = self._policy.federates_with
        return check is not None and check(server)
