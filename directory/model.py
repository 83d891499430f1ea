"""Domain values of the directory: accounts, groups, roles (no storage, no I/O)."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    PUPIL = "pupil"
    TEACHER = "teacher"
    PARENT = "parent"
    STAFF = "staff"
    ADMIN = "admin"


class Status(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    LEAVER = "leaver"


class GroupKind(enum.StrEnum):
    CLASS = "class"
    COURSE = "course"
    STAFF = "staff"
    CUSTOM = "custom"


class MemberRole(enum.StrEnum):
    OWNER = "owner"  # teachers of a class/course, owners of custom groups
    MEMBER = "member"


@dataclass(frozen=True)
class Account:
    id: int
    login: str
    display_name: str
    role: Role
    status: Status
    external_id: str | None = None
    first_name: str = ""
    last_name: str = ""
    deletion_date: dt.date | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.status is Status.ACTIVE


@dataclass(frozen=True)
class Group:
    id: int
    name: str
    display_name: str
    kind: GroupKind
    members_may_post: bool = False


@dataclass(frozen=True)
class GroupMember:
    account: Account
    role: MemberRole


class DirectoryError(Exception):
    """Base of the directory's domain errors; protocols translate them at their edge."""


class NotFound(DirectoryError):
    pass


class AlreadyExists(DirectoryError):
    pass


class InvalidName(DirectoryError):
    pass
