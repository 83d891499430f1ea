"""Creating rooms (spec: Client-Server API 10.1.1 "Creation", POST /createRoom):
the preset's state events (``messenger.rooms.presets``), the invitations and the
alias, all in one transaction."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from messenger.chat_rights import ChatAction
from messenger.events.identifiers import InvalidIdentifier, new_room_id, parse_room_alias
from messenger.events.room_versions import (
    CREATABLE_ROOM_VERSIONS,
    DEFAULT_ROOM_VERSION,
    room_version,
)
from messenger.identity import Requester
from messenger.rooms import state as room_state
from messenger.rooms.errors import (
    AliasInUse,
    AuthRuleViolation,
    InvalidRequest,
    UnsupportedVersion,
)
from messenger.rooms.membership import Membership
from messenger.rooms.policy import ChatPolicy
from messenger.rooms.presets import CreateRoomRequest, initial_state
from messenger.rooms.writer import RoomWriter
from messenger.storage import aliases as alias_store
from messenger.storage import dag
from messenger.storage import events as store
from messenger.storage.events import StoredEvent

log = logging.getLogger("schulhof.messenger")


class RoomCreation:
    def __init__(self, writer: RoomWriter, server_name: str, policy: ChatPolicy,
                 membership: Membership) -> None:
        self._writer = writer
        self._server_name = server_name
        self._policy = policy
        self._membership = membership

    async def create_room(self, requester: Requester, request: CreateRoomRequest) -> str:
        await self._policy.check_right(requester.account, ChatAction.START_DIRECT
                                       if request.is_direct else ChatAction.CREATE_ROOM)
        for invitee in request.invite:
            await self._policy.check_may_invite(requester.account, requester.user_id, invitee)
        # Users of other servers are invited through their server once the room exists.
        remote = [u for u in request.invite if self._policy.is_remote(u)]
        local = tuple(u for u in request.invite if u not in remote)
        room_id = await self._create_room(requester.user_id, requester.account.display_name,
                                          dataclasses.replace(request, invite=local))
        for invitee in remote:
            await self._membership.invite(requester, room_id, invitee,
                                          is_direct=request.is_direct)
        return room_id

    async def create_room_as(self, sender: str, display_name: str,
                             request: CreateRoomRequest) -> str:
        """A room created by the server itself (its system user): no role policy check,
        the caller (``messenger.school_rooms``) decides who belongs in the room."""
        return await self._create_room(sender, display_name, request)

    async def _create_room(self, sender: str, display_name: str,
                           request: CreateRoomRequest) -> str:
        version = DEFAULT_ROOM_VERSION
        if request.room_version is not None:
            if request.room_version not in CREATABLE_ROOM_VERSIONS:
                raise UnsupportedVersion(
                    f"room version {request.room_version!r} is not supported here")
            version = room_version(request.room_version)
        alias = None
        if request.room_alias_name is not None:
            alias = f"#{request.room_alias_name}:{self._server_name}"
            try:
                parse_room_alias(alias)
            except InvalidIdentifier as exc:
                raise InvalidRequest(str(exc)) from None
        templates = initial_state(request, creator=sender, creator_displayname=display_name,
                                  version=version, alias=alias)
        hashed_create = None
        if version.room_id_is_create_hash:
            # MSC4291: the room id is the create event's hash, so that event comes first.
            try:
                hashed_create = self._writer.hashed_room_create(version, sender,
                                                                templates[0].content)
            except AuthRuleViolation as exc:
                raise InvalidRequest(str(exc)) from None
            room_id = str(hashed_create[0]["room_id"])
            templates = templates[1:]
        else:
            room_id = new_room_id(self._server_name)
        async with self._writer.transaction() as write:
            session = write.session
            if alias is not None and await alias_store.resolve(session, alias):
                raise AliasInUse(f"room alias {alias} already exists")
            await store.insert_room(session, room_id, version.identifier, sender,
                                    request.is_public)
            state: dict[tuple[str, str], Mapping[str, Any]] = {}
            latest = None
            if hashed_create is not None:
                latest = await self._writer.store_hashed_room_create(session, *hashed_create)
                state = room_state.apply(state, latest.pdu)
                write.publish(latest)
            for t in templates:
                latest = await self._writer.store_event(session, version, room_id, state,
                                                        _after(latest), sender, t.type,
                                                        t.content, t.state_key)
                state = room_state.apply(state, latest.pdu)
                write.publish(latest)
            for invitee in request.invite:
                content: dict[str, Any] = {"membership": "invite"}
                if request.is_direct:
                    content["is_direct"] = True
                latest = await self._writer.store_event(session, version, room_id, state,
                                                        _after(latest), sender,
                                                        "m.room.member", content, invitee)
                state = room_state.apply(state, latest.pdu)
                write.publish(latest)
            if latest is not None:
                await dag.move_extremities(session, room_id, [], [latest.event_id])
            if alias is not None:
                await alias_store.create(session, alias, room_id, sender)
        log.info("event=room_created room=%s creator=%s version=%s invites=%d", room_id,
                 sender, version.identifier, len(request.invite))
        return room_id


def _after(event: StoredEvent | None) -> dict[str, int]:
    """The prev_events of the next event of a room being created: its last one."""
    return {} if event is None else {event.event_id: int(event.pdu["depth"])}
