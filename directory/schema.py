"""SQLAlchemy models of the directory (storage layer).

All packages put their tables on ``Base.metadata`` so one Alembic history
covers the whole database.  Local parts of all addresses (logins, group
addresses, aliases) share one table so a local part can never mean two things.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    TypeDecorator,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def table_of(row: type[Base]) -> Table:
    """The table a model class maps, for Core statements (``__table__`` is typed as
    any FROM clause, since a class may map a join; ours always map one table)."""
    table = row.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{row.__name__} does not map a single table")
    return table


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> object:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None,
                             dialect: object) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    deletion_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True, nullable=True)
    password_hash: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UtcDateTime(), default=_now, onupdate=_now
    )

    __table_args__ = (
        CheckConstraint("role IN ('pupil','teacher','parent','staff','admin')", name="role_ok"),
        CheckConstraint("status IN ('active','suspended','leaver')", name="status_ok"),
    )


class GroupRow(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # also the address local part
    display_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    members_may_post: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UtcDateTime(), default=_now, onupdate=_now
    )

    __table_args__ = (
        CheckConstraint("kind IN ('class','course','staff','custom')", name="kind_ok"),
    )


class GroupMemberRow(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16), default="member")

    __table_args__ = (CheckConstraint("role IN ('owner','member')", name="member_role_ok"),)


class AddressRow(Base):
    """One local part -> one account or one group (primary address or alias)."""

    __tablename__ = "addresses"

    local_part: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True, index=True
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), nullable=True, index=True
    )
    is_alias: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(
        UtcDateTime(), default=_now, server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint(
            "(account_id IS NULL) <> (group_id IS NULL)", name="exactly_one_owner"
        ),
    )


class ParentLinkRow(Base):
    __tablename__ = "parent_links"

    parent_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    child_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
