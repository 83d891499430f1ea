"""Messenger rights per role and per group (issue 17): who may open new rooms and who
may start direct chats, as German school messengers (ByCS, SchulMessenger) switch them.

Defaults: teachers, staff and admins may do both; pupils may start direct chats (the
role policy still decides with whom) but not open rooms; parents may do neither: they
answer in chats a teacher opened.  A group can grant a right to its members (say the
pupils' council may open rooms); an account gets the widest right of its role and its
groups.  Pure: ``ChatPolicy`` asks it before invitations and room creation.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from directory.model import Role


class ChatAction(enum.StrEnum):
    CREATE_ROOM = "create_room"  # a room for several people (not a direct chat)
    START_DIRECT = "start_direct"  # a direct chat, or inviting someone into a room


_STAFF = frozenset({Role.TEACHER, Role.STAFF, Role.ADMIN})


@dataclass(frozen=True)
class ChatRights:
    create_rooms: frozenset[Role] = _STAFF
    start_direct: frozenset[Role] = _STAFF | {Role.PUPIL}
    create_rooms_groups: frozenset[str] = field(default_factory=frozenset)
    start_direct_groups: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def everyone(cls) -> ChatRights:
        """No restriction beyond the role policy (tests of the protocol use it)."""
        return cls(frozenset(Role), frozenset(Role))

    def allows(self, action: ChatAction, role: Role, groups: Iterable[str] = ()) -> bool:
        if action is ChatAction.CREATE_ROOM:
            roles, granting = self.create_rooms, self.create_rooms_groups
        else:
            roles, granting = self.start_direct, self.start_direct_groups
        return role in roles or any(g in granting for g in groups)
