"""School rooms: one room per directory group, kept in line with the directory.

The server's system user (``@schulhof:<domain>``, power 100) creates a room
for every group (name = the group's display name, alias ``#<group>:<domain>``)
and, on every run of ``SchoolRooms.sync_group_rooms``:

- brings the group's active members in: invited by the system user, then
  joined in their own name (spec: Client-Server API 10.4 "Room membership";
  the auth rules of room version 10 still check every event) unless
  ``auto_join`` is off, when the invitation is left for the member to accept;
- removes (kicks) joined or invited users who are no longer active members;
- sets power levels: owners (teachers) 50 (moderators), the school's admin
  accounts 100; ``events_default`` 50 for groups whose ``members_may_post``
  is False (announcement rooms: only owners post), else 0;
- renames the room when the group's display name changed;
- with federation, keeps a server ACL (``m.room.server_acl``) that lets only this
  school and the servers it federates with (partner schools, the admin's list)
  take part, without IP literals (issue 13, point 6).

Decisions a member made stand: a member who left on their own, or was banned
by a moderator, is not pulled back.  But the room stays open to them: a member
who left is invited again (marked ``REJOIN_MARK``, never auto-joined), so the
Element apps list the class room under invitations and one tap brings them
back; declining that invitation is a decision too and stands (issue 19.9).
A moderator's kick is not respected (the directory is the source of truth for
who is in a class).  Users at level 100 other than the system user (admins) are
never kicked, and a level of 100 once given cannot be taken by the system user
(auth rules: equal levels).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from directory.model import Account, Group, GroupMember, MemberRole, Role, Status
from federation.matrix.server_acl import EVENT_TYPE as ACL_EVENT
from federation.matrix.server_acl import ServerAcl
from messenger.events.client_format import client_event
from messenger.rooms.errors import AliasInUse, AuthRuleViolation
from messenger.rooms.presets import CreateRoomRequest, default_power_levels
from messenger.rooms.service import RoomService
from messenger.rooms.writer import ServerAppend
from messenger.school_space import SchoolSpace
from messenger.storage import aliases as alias_store
from messenger.storage import events as store
from messenger.storage import group_rooms

log = logging.getLogger("schulhof.messenger")

# In the content of an invitation the sync sends to a member who left on their own:
# an offer to come back, which the sync must not accept for them.
REJOIN_MARK = "org.schulhof.rejoin"
OWNER_LEVEL = 50
ADMIN_LEVEL = 100
SYSTEM_DISPLAY_NAME = "Schulhof"
SYSTEM_LOCALPART = "schulhof"  # the system user @schulhof:<domain>
# Member events per write transaction (the write lock is held that long).
BATCH_EVENTS = 250


class GroupDirectory(Protocol):
    """What school rooms need of ``directory.service.Directory``."""

    async def list_groups(self) -> list[Group]: ...

    async def get_group(self, name: str) -> Group: ...

    async def group_members(self, name: str) -> list[GroupMember]: ...

    async def list_accounts(self, *, role: Role | None = None,
                            status: Status | None = None) -> list[Account]: ...


@dataclass(frozen=True)
class RoomPlan:
    """What a group's room should look like (pure; from the directory alone)."""

    name: str
    members: Mapping[str, str]  # user id -> display name
    power_users: Mapping[str, int]
    events_default: int


@dataclass
class SyncReport:
    created: int = 0
    invited: int = 0
    joined: int = 0
    removed: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"created={self.created} invited={self.invited} joined={self.joined} "
                f"removed={self.removed} updated={self.updated} errors={len(self.errors)}")


def plan_room(group: Group, members: Sequence[GroupMember], admins: Sequence[Account], *,
              server_name: str, system_user: str) -> RoomPlan:
    def uid(account: Account) -> str:
        return f"@{account.login}:{server_name}"

    active = [m for m in members if m.account.is_active]
    power = {system_user: ADMIN_LEVEL}
    for m in active:
        if m.role == MemberRole.OWNER:
            power[uid(m.account)] = OWNER_LEVEL
    for admin in admins:
        if admin.is_active:
            power[uid(admin)] = ADMIN_LEVEL
    return RoomPlan(
        name=group.display_name or group.name,
        members={uid(m.account): m.account.display_name for m in active},
        power_users=power,
        events_default=0 if group.members_may_post else OWNER_LEVEL)


class SchoolRooms:
    """Creates and updates the rooms of the school's groups (see the module docstring)."""

    def __init__(self, directory: GroupDirectory, rooms: RoomService, *,
                 system_localpart: str = SYSTEM_LOCALPART, auto_join: bool = True) -> None:
        self._directory = directory
        self._rooms = rooms
        self._db = rooms.db
        self.server_name = rooms.server_name
        self.system_user = f"@{system_localpart}:{rooms.server_name}"
        self.auto_join = auto_join
        self._lock = asyncio.Lock()  # the periodic run and an admin's run never overlap
        self.space = SchoolSpace(rooms, self.system_user, SYSTEM_DISPLAY_NAME)
        # The servers the school federates with (None: no federation, no ACL).
        self.federated_servers: frozenset[str] | None = None

    def server_acl(self) -> dict[str, Any] | None:
        """The content of the server ACL the school's rooms should have, if any."""
        if self.federated_servers is None:
            return None
        return ServerAcl.only({self.server_name, *self.federated_servers}).content()

    # --- the sync -------------------------------------------------------------------
    async def sync_group_rooms(self) -> SyncReport:
        """Bring every group's room in line with the directory; returns what changed."""
        report = SyncReport()
        async with self._lock:
            admins = await self._directory.list_accounts(role=Role.ADMIN, status=Status.ACTIVE)
            for group in await self._directory.list_groups():
                try:
                    await self._sync_group(group, admins, report)
                except Exception as exc:  # one broken group must not stop the others
                    log.exception("event=group_room_sync_failed group=%s", group.name)
                    report.errors.append(f"{group.name}: {exc}")
            try:  # the school's space holds every group room (messenger.school_space)
                async with self._db.read() as session:
                    links = await group_rooms.all_links(session)
                await self.space.sync(links.values())
            except Exception as exc:
                log.exception("event=school_space_sync_failed")
                report.errors.append(f"school space: {exc}")
        log.info("event=group_rooms_synced %s", report)
        return report

    async def sync_group(self, name: str) -> SyncReport:
        report = SyncReport()
        async with self._lock:
            admins = await self._directory.list_accounts(role=Role.ADMIN, status=Status.ACTIVE)
            await self._sync_group(await self._directory.get_group(name), admins, report)
        return report

    async def _sync_group(self, group: Group, admins: Sequence[Account],
                          report: SyncReport) -> None:
        members = await self._directory.group_members(group.name)
        plan = plan_room(group, members, admins, server_name=self.server_name,
                         system_user=self.system_user)
        room_id = await self._room_for(group, plan, report)
        async with self._db.read() as session:
            rows = {r.user_id: r for r in await store.room_members(session, room_id)}
            left = [r.event_id for r in rows.values() if r.membership in ("leave", "invite")]
            leave_events = await store.get_events(session, left)
            # Who left the room itself (their membership before leaving was join):
            # the room is offered to them again.
            left_room = {
                uid for uid, r in rows.items()
                if r.membership == "leave" and (e := leave_events.get(r.event_id)) is not None
                and e.pdu.get("sender") == uid and await group_rooms.membership_before(
                    session, room_id, uid, e.stream_ordering) == "join"}
            state = await store.current_state(
                session, room_id, [("m.room.power_levels", ""), ("m.room.name", ""),
                                   (ACL_EVENT, "")])
        # Power levels first: a new owner is a moderator from their first event on.
        await self._update_power(room_id, plan, state, report)
        # Invitations and joins go in batches (one commit each, not one per event).
        appends: list[tuple[str, ServerAppend]] = []
        for user_id, display_name in plan.members.items():
            row = rows.get(user_id)
            membership = row.membership if row else "leave"
            if membership == "ban":
                continue
            event = leave_events.get(row.event_id) if row is not None else None
            offer = user_id in left_room
            if membership == "leave" and event is not None and event.sender == user_id \
                    and not offer:
                continue  # they declined an invitation: that stands
            if membership == "leave":
                content: dict[str, Any] = {"membership": "invite"}
                if offer:
                    content[REJOIN_MARK] = True
                    content["reason"] = f"{plan.name}: du kannst jederzeit zurückkommen"
                appends.append(("invited", ServerAppend(self.system_user, room_id,
                                                        "m.room.member", content, user_id)))
                membership = "invite"
            elif membership == "invite" and event is not None:
                offer = bool(event.pdu.get("content", {}).get(REJOIN_MARK))
            if membership == "invite" and self.auto_join and not offer:
                appends.append(("joined", ServerAppend(
                    user_id, room_id, "m.room.member",
                    {"membership": "join", "displayname": display_name}, user_id)))
        for start in range(0, len(appends), BATCH_EVENTS):
            chunk = appends[start:start + BATCH_EVENTS]
            results = await self._rooms.writer.append_batch([a for _, a in chunk])
            for (what, append), result in zip(chunk, results, strict=True):
                if isinstance(result, Exception):
                    report.errors.append(f"{group.name}: {append.state_key} not {what}: "
                                         f"{result}")
                elif what == "invited":
                    report.invited += 1
                else:
                    report.joined += 1
        for user_id, row in rows.items():
            if row.membership not in ("join", "invite") or user_id in plan.members:
                continue
            if user_id == self.system_user or plan.power_users.get(user_id, 0) >= ADMIN_LEVEL:
                continue
            try:
                await self._rooms.append_as(
                    self.system_user, room_id, "m.room.member",
                    {"membership": "leave", "reason": f"no longer in {group.name}"},
                    state_key=user_id)
                report.removed += 1
            except AuthRuleViolation as exc:  # e.g. someone raised them to 100 by hand
                report.errors.append(f"{group.name}: cannot remove {user_id}: {exc}")
        name_event = state.get(("m.room.name", ""))
        if name_event is None or name_event.pdu["content"].get("name") != plan.name:
            await self._rooms.append_as(self.system_user, room_id, "m.room.name",
                                        {"name": plan.name}, state_key="")
            report.updated += 1
        acl = self.server_acl()
        acl_event = state.get((ACL_EVENT, ""))
        if acl is not None and (acl_event is None or acl_event.pdu["content"] != acl):
            await self._rooms.append_as(self.system_user, room_id, ACL_EVENT, acl,
                                        state_key="")
            report.updated += 1

    async def _update_power(self, room_id: str, plan: RoomPlan, state: Mapping[Any, Any],
                            report: SyncReport) -> None:
        event = state.get(("m.room.power_levels", ""))
        content: dict[str, Any] = dict(event.pdu["content"]) if event else {}
        current_users = dict(content.get("users") or {})
        users = dict(plan.power_users)
        # Levels of 100 are beyond the system user's reach (equal level): keep them.
        for user_id, level in current_users.items():
            if level >= ADMIN_LEVEL:
                users[user_id] = level
        if current_users == users and content.get("events_default") == plan.events_default:
            return
        content["users"], content["events_default"] = users, plan.events_default
        await self._rooms.append_as(self.system_user, room_id, "m.room.power_levels", content,
                                    state_key="")
        report.updated += 1

    async def _room_for(self, group: Group, plan: RoomPlan, report: SyncReport) -> str:
        alias = f"#{group.name}:{self.server_name}"
        async with self._db.read() as session:
            room_id = await group_rooms.room_of(session, group.id)
            if room_id is not None:
                return room_id
            # A room made by an earlier run that stopped before linking it.
            found = await alias_store.get(session, alias)
        if found is not None and found.creator == self.system_user:
            async with self._db.write() as session:
                await group_rooms.link(session, group.id, found.room_id)
            return found.room_id
        power = default_power_levels(self.system_user, "private_chat", ())
        power.update({"users": dict(plan.power_users), "events_default": plan.events_default,
                      "invite": OWNER_LEVEL})
        acl = self.server_acl()
        initial = ((ACL_EVENT, "", acl),) if acl is not None else ()
        request = CreateRoomRequest(name=plan.name, room_alias_name=group.name,
                                    power_level_content_override=power, initial_state=initial)
        try:
            room_id = await self._rooms.create_room_as(self.system_user, SYSTEM_DISPLAY_NAME,
                                                       request)
        except AliasInUse:  # somebody took #group: the room still exists, without it
            log.warning("event=group_room_alias_taken group=%s alias=%s", group.name, alias)
            request = CreateRoomRequest(name=plan.name, power_level_content_override=power,
                                        initial_state=initial)
            room_id = await self._rooms.create_room_as(self.system_user, SYSTEM_DISPLAY_NAME,
                                                       request)
        async with self._db.write() as session:
            await group_rooms.link(session, group.id, room_id)
        report.created += 1
        log.info("event=group_room_created group=%s room=%s", group.name, room_id)
        return room_id

    async def readmit(self, user_id: str, room_id: str) -> bool:
        """Invite an active member of the room's group who is outside its room (left,
        declined the offer) so that their join can follow; False if they are not one.

        Called when such a member joins the invite-only room by id or alias: the
        directory says they belong there (issue 19.9)."""
        async with self._db.read() as session:
            group_id = await group_rooms.group_of(session, room_id)
            if group_id is None:
                return False
            rows = {r.user_id: r.membership for r in await store.room_members(session, room_id)}
        if rows.get(user_id, "leave") != "leave":
            return False  # banned, or already in or invited
        group = next((g for g in await self._directory.list_groups() if g.id == group_id), None)
        if group is None or not any(
                m.account.is_active and f"@{m.account.login}:{self.server_name}" == user_id
                for m in await self._directory.group_members(group.name)):
            return False
        async with self._lock:
            await self._rooms.append_as(self.system_user, room_id, "m.room.member",
                                        {"membership": "invite", REJOIN_MARK: True},
                                        state_key=user_id)
        log.info("event=group_room_readmit group=%s user=%s", group.name, user_id)
        return True

    # --- admin actions ----------------------------------------------------------------
    async def room_of_group(self, name: str) -> str | None:
        group = await self._directory.get_group(name)
        async with self._db.read() as session:
            return await group_rooms.room_of(session, group.id)

    async def _existing_room(self, name: str) -> str:
        room_id = await self.room_of_group(name)
        if room_id is None:  # first use before any periodic run: make it now
            await self.sync_group(name)
            room_id = await self.room_of_group(name)
        assert room_id is not None
        return room_id

    async def post(self, group_name: str, text: str) -> str:
        """An announcement from the school (the system user) into a group's room."""
        room_id = await self._existing_room(group_name)
        return await self._rooms.append_as(self.system_user, room_id, "m.room.message",
                                           {"msgtype": "m.text", "body": text})

    async def export(self, group_name: str, *, page: int = 500,
                     ) -> AsyncIterator[dict[str, Any]]:
        """Every event of a group's room, oldest first, as clients see them (with room
        ids and senders): the school's record as data controller."""
        room_id = await self.room_of_group(group_name)
        if room_id is None:
            return
        after = 0
        while True:
            async with self._db.read() as session:
                events = await store.room_events(session, room_id, after=after,
                                                 upto=2 ** 62, limit=page, newest_first=False)
            for event in events:
                out = client_event(event.pdu, now_ms=0)
                out.pop("unsigned", None)
                yield out
            if len(events) < page:
                return
            after = events[-1].stream_ordering
