"""The room service: one object for the API, the school rooms and the CLI,
made of parts that each do one job (spec: Client-Server API 10 "Rooms",
9 "Events"):

- ``writer``: the one write lock; builds, checks and stores every event;
- ``creation``: /createRoom;
- ``membership``: join, invite, leave, kick, ban, unban, forget;
- ``sending``: messages, state events, redactions;
- ``reading``: events, state, members, /messages, /context, the directory;
- ``aliases``: room aliases.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from directory.db import Database
from messenger.events.signing import EventSigner, KeyLookup
from messenger.rooms.aliases import RoomAliases
from messenger.rooms.backfill import Backfiller
from messenger.rooms.creation import RoomCreation
from messenger.rooms.membership import Membership
from messenger.rooms.policy import ChatPolicy
from messenger.rooms.reading import RoomReader
from messenger.rooms.receiving import RemoteEvents
from messenger.rooms.remote_membership import RemoteMembership
from messenger.rooms.remote_requests import RemoteRooms, Transport
from messenger.rooms.resident import ResidentRooms
from messenger.rooms.sending import EventSending
from messenger.rooms.writer import PduOutbox, RoomWriter
from messenger.sync.cache import SyncCache
from messenger.sync.notifier import Notifier


class RoomService:
    def __init__(self, db: Database, server_name: str, notifier: Notifier, policy: ChatPolicy, *,
                 clock: Callable[[], float] = time.time, cache: SyncCache | None = None,
                 signer: EventSigner | None = None) -> None:
        self.db = db
        self.server_name = server_name
        self.notifier = notifier
        self.policy = policy
        self.cache = cache
        # Public for one hook: the push sender hears of each commit (writer.after_commit).
        self.writer = writer = RoomWriter(db, notifier, clock=clock, cache=cache,
                                           signer=signer, server_name=server_name)
        aliases = self._aliases = RoomAliases(db, server_name)
        membership = self._membership = Membership(writer, aliases, policy)
        creation = RoomCreation(writer, server_name, policy, membership)
        sending = EventSending(writer)
        reading = self._reading = RoomReader(db)

        # The operations callers use, each from the part that does it.
        self.catch_up = writer.catch_up
        self.create_room = creation.create_room
        self.create_room_as = creation.create_room_as
        self.join = membership.join
        self.invite = membership.invite
        self.leave = membership.leave
        self.leave_as = membership.leave_as
        self.kick = membership.kick
        self.ban = membership.ban
        self.unban = membership.unban
        self.forget = membership.forget
        self.send = sending.send
        self.set_state = sending.set_state
        self.redact_event = sending.redact_event
        self.append_as = sending.append_as
        self.visible_upto = reading.visible_upto
        self.get_event = reading.get_event
        self.room_state = reading.room_state
        self.state_event = reading.state_event
        self.members = reading.members
        self.joined_rooms = reading.joined_rooms
        self.messages = reading.messages
        self.context = reading.context
        self.is_public = reading.is_public
        self.public_rooms = reading.public_rooms
        self.resolve_room = aliases.resolve_room
        self.create_alias = aliases.create_alias
        self.delete_alias = aliases.delete_alias
        self.lookup_alias = aliases.lookup
        # Set by ``enable_federation``: the rooms' side of the Server-Server API.
        self.remote_events: RemoteEvents | None = None
        self.resident: ResidentRooms | None = None
        self._signer = signer

    def enable_federation(self, transport: Transport, key_of: KeyLookup,
                          outbox: PduOutbox, federates_with: Callable[[str], bool]) -> None:
        """Rooms reach other servers: events of rooms with remote members are queued
        in ``outbox``, joins and invites go through ``transport`` (Server-Server API)."""
        remote = RemoteRooms(transport)
        self.policy.federates_with = federates_with
        self.writer.outbox = outbox
        self.remote_events = RemoteEvents(self.writer, self.server_name, key_of, remote)
        self.remote_events.federates_with = federates_with
        self._aliases.remote = remote
        self._aliases.federates_with = federates_with
        self.resident = ResidentRooms(self.writer, self.remote_events, self.policy,
                                      self._signer)
        self._membership.remote = RemoteMembership(self.writer, self.remote_events, remote)
        self._reading.backfill = Backfiller(self.writer, self.remote_events, remote,
                                            federates_with).fill
