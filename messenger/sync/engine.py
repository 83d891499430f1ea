"""What changed for a user since a sync position: typed results and the stream
readers both sync views share (spec: Client-Server API 8.1 "Syncing"; MSC4186).

The views are thin: ``messenger.sync.v3`` turns a ``SyncResult`` into the
/v3/sync response (``SyncBuilder`` computes it, from the sync cache or the
database: both produce these same types, so the two paths cannot drift in
shape), and ``messenger.sync.sliding`` builds its room entries from the same
timeline and state reads and takes its extensions (to-device, e2ee, account
data, receipts, typing) from the readers here.

A room's result is extensible: ``extra`` holds fields other features add to
the room's JSON (e.g. ``unread_thread_notifications``) without a change here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from messenger.ephemeral import TypingTracker
from messenger.identity import Requester
from messenger.storage import device_messages as dm
from messenger.storage import events as store
from messenger.storage import timeline_queries as queries
from messenger.storage import user_data
from messenger.sync.tokens import SyncToken

MAX_TO_DEVICE_PER_SYNC = 100


@dataclass
class Timeline:
    """A slice of a room's timeline; ``prev_batch`` None: no events were sliced."""

    events: list[Any] = field(default_factory=list)  # client events, rendered
    limited: bool = False
    prev_batch: str | None = None


@dataclass
class JoinedRoom:
    timeline: Timeline = field(default_factory=Timeline)
    state: list[Any] = field(default_factory=list)
    ephemeral: list[Any] = field(default_factory=list)
    account_data: list[Any] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    notification_count: int = 0
    highlight_count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class InvitedRoom:
    invite_state: list[Any] = field(default_factory=list)


@dataclass
class LeftRoom:
    timeline: Timeline = field(default_factory=Timeline)
    state: list[Any] = field(default_factory=list)
    account_data: list[Any] = field(default_factory=list)


@dataclass
class DeviceChanges:
    """E2EE state of the requesting device (spec 11.12.5.1, 11.12.5.2)."""

    changed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    one_time_key_counts: dict[str, int] = field(default_factory=dict)
    fallback_key_types: list[str] = field(default_factory=list)


@dataclass
class SyncResult:
    next_batch: SyncToken
    join: dict[str, JoinedRoom] = field(default_factory=dict)
    invite: dict[str, InvitedRoom] = field(default_factory=dict)
    leave: dict[str, LeftRoom] = field(default_factory=dict)
    account_data: list[Any] = field(default_factory=list)
    to_device: list[Any] = field(default_factory=list)
    devices: DeviceChanges = field(default_factory=DeviceChanges)

    @property
    def has_news(self) -> bool:
        """Anything a long-poll should return for."""
        return bool(self.join or self.invite or self.leave or self.account_data
                    or self.to_device or self.devices.changed or self.devices.left)


# --- stream readers shared by the views ---------------------------------------------
def key_counts_with_default(counts: tuple[dict[str, int], list[str]],
                            ) -> tuple[dict[str, int], list[str]]:
    """One-time key counts always name signed_curve25519 (clients upload when 0)."""
    one_time, fallback = counts
    one_time = dict(one_time)
    one_time.setdefault("signed_curve25519", 0)
    return one_time, list(fallback)


async def to_device_between(session: AsyncSession, requester: Requester, after: int,
                            upto: int, limit: int = MAX_TO_DEVICE_PER_SYNC,
                            ) -> tuple[list[dict[str, Any]], int]:
    """The device's to-device messages in (after, upto] and the position reached
    (short of ``upto`` when ``limit`` cut the batch: the rest come next time)."""
    if upto <= after:
        return [], upto
    rows = await dm.to_device_for(session, requester.account_id, requester.device_id,
                                  after, upto, limit)
    if len(rows) == limit:
        return [event for _, event in rows], rows[-1][0]
    return [event for _, event in rows], upto


async def changed_devices(session: AsyncSession, requester: Requester, after: int,
                          upto: int) -> set[str]:
    """Users sharing a room (and the user) whose device list changed (spec 11.12.5.1)."""
    if upto <= after:
        return set()
    users = await dm.users_sharing_a_room(session, requester.user_id)
    users.add(requester.user_id)
    return await dm.changed_users(session, after, upto, users)


async def membership_device_changes(session: AsyncSession, requester: Requester,
                                    after: int, upto: int) -> tuple[set[str], set[str]]:
    """From the member events in (after, upto] of the user's rooms: (users who now
    share a room and joined one of them - their keys are news, spec 11.12.5.1
    ``changed``; users who share no room with the user any more: ``left``)."""
    if upto <= after:
        return set(), set()
    me = requester.user_id
    rooms = [row.room_id for row in await store.memberships_of(session, me)]
    events = await queries.member_changes_between(session, rooms, after, upto)
    if not events:
        return set(), set()
    # Rooms the user joined or left in the range: all their members are candidates.
    own = [room for room, user, _m in events if user == me]
    candidates = {user for _room, user, _m in events} | \
        await queries.members_of_rooms(session, own)
    candidates.discard(me)
    sharing = await dm.users_sharing_a_room(session, me)
    joined_now = {user for _room, user, m in events if m == "join"}
    for room, user, m in events:
        if user == me and m == "join":
            joined_now |= await queries.members_of_rooms(session, [room])
    return (joined_now & candidates & sharing), candidates - sharing


async def account_data_between(session: AsyncSession, requester: Requester, after: int,
                               upto: int) -> tuple[list[Any], dict[str, list[Any]]]:
    """(global events, room id -> events) of account data changed in (after, upto]."""
    global_data: list[Any] = []
    room_data: dict[str, list[Any]] = {}
    if upto <= after:
        return global_data, room_data
    for room_id, data_type, content in await user_data.account_data_since(
            session, requester.account_id, after, upto):
        item = {"type": data_type, "content": content}
        if room_id:
            room_data.setdefault(room_id, []).append(item)
        else:
            global_data.append(item)
    return global_data, room_data


async def receipts_between(session: AsyncSession, room_ids: Iterable[str], after: int,
                           upto: int) -> dict[str, dict[str, Any]]:
    """room id -> one m.receipt event with the receipts in (after, upto] (spec 13.7)."""
    return {room_id: {"type": "m.receipt", "content": content}
            for room_id, content in (await dm.receipts_between(
                session, room_ids, after, upto)).items()}


def typing_changes(typing: TypingTracker, room_ids: Iterable[str],
                   since: int | None) -> dict[str, dict[str, Any]]:
    """room id -> m.typing event where typing changed after ``since`` (spec 13.6)."""
    return typing.changes(room_ids, since)
