"""Each group's bridge settings (issue 18): whether its mail is posted into its room,
whether its room's announcements reach the parents of pupil members by mail.

Defaults by the group's kind: mail to the room on for class and course groups
(the lists pupils are on for lessons), off for staff and custom groups (a staff
room is not a second copy of the staff list); parents' digests off until a
group's teacher or the admin allows them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from directory.model import Group, GroupKind
from messenger.storage.tables import BridgeGroupRow

MAIL_TO_ROOM_KINDS = frozenset({GroupKind.CLASS, GroupKind.COURSE})


@dataclass(frozen=True)
class GroupBridge:
    mail_to_room: bool
    parents_digest: bool


async def setting(session: AsyncSession, group: Group) -> GroupBridge:
    """The group's settings, read in the caller's session (the bridge's one read)."""
    row = await session.get(BridgeGroupRow, group.id)
    default = group.kind in MAIL_TO_ROOM_KINDS
    if row is None:
        return GroupBridge(mail_to_room=default, parents_digest=False)
    return GroupBridge(mail_to_room=default if row.mail_to_room is None else row.mail_to_room,
                       parents_digest=row.parents_digest)


class BridgeGroups:
    """Reads and changes ``GroupBridge`` settings (one row per changed group)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def of(self, group: Group) -> GroupBridge:
        async with self._db.read() as session:
            return await setting(session, group)

    async def parents_digest_groups(self) -> set[int]:
        """Ids of the groups whose announcements go to parents too."""
        async with self._db.read() as session:
            ids = await session.scalars(select(BridgeGroupRow.group_id).where(
                BridgeGroupRow.parents_digest.is_(True)))
            return set(ids)

    async def change(self, group: Group, *, mail_to_room: bool | None = None,
                     parents_digest: bool | None = None) -> GroupBridge:
        """Set what is given (None: keep it); returns the settings now in force."""
        async with self._db.write() as session:
            row = await session.get(BridgeGroupRow, group.id)
            if row is None:
                row = BridgeGroupRow(group_id=group.id, mail_to_room=None, parents_digest=False)
                session.add(row)
            if mail_to_room is not None:
                row.mail_to_room = mail_to_room
            if parents_digest is not None:
                row.parents_digest = parents_digest
        return await self.of(group)
