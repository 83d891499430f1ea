"""The audit log: which admin did what, when, from which address (issue 17).

Append-only: the class offers ``record`` and reads, nothing that changes an
entry, except the two retention steps the school's settings ask for (entries
older than the audit period go; client addresses, personal data, go sooner).
Entries name accounts by login and say what changed, never a display name,
a password or message content: an erasure must not leave the erased
person's data behind in the log (GDPR Art. 17; the log keeps *that* it
happened).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Index, Integer, String, Text, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from directory.db import Database, affected_rows
from directory.schema import Base, UtcDateTime

# What the command line records as its "address" (no network peer).
COMMAND_LINE = "cli"


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[str] = mapped_column(Text, default="")
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_audit_log_at", "at"), {"sqlite_autoincrement": True})


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    details: str
    client_address: str | None


@dataclass(frozen=True)
class Actor:
    """Who acts: an admin's login (or ``system`` for the daily job) and where from."""

    login: str
    address: str | None = COMMAND_LINE


SYSTEM = Actor("system", None)


def format_details(details: Mapping[str, object]) -> str:
    """``key=value`` pairs in a stable order (values without spaces stay readable)."""
    return " ".join(f"{k}={v}" for k, v in sorted(details.items()))


class AuditLog:
    def __init__(self, db: Database, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.db = db
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def _now(self) -> dt.datetime:
        return self._clock()

    async def record(self, actor: Actor, action: str, target: str = "",
                     details: Mapping[str, object] | None = None) -> None:
        async with self.db.write() as session:
            session.add(AuditRow(at=self._now(), actor=actor.login[:64], action=action[:64],
                                 target=target[:200],
                                 details=format_details(details or {}),
                                 client_address=actor.address))

    async def entries(self, *, limit: int = 100, actor: str | None = None,
                      action: str | None = None, target: str | None = None,
                      before_id: int | None = None) -> list[AuditEntry]:
        """The newest entries first, filtered; ``before_id`` pages further back."""
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if actor:
            query = query.where(AuditRow.actor == actor)
        if action:
            query = query.where(AuditRow.action == action)
        if target:
            query = query.where(AuditRow.target == target)
        if before_id is not None:
            query = query.where(AuditRow.id < before_id)
        async with self.db.read() as session:
            rows = (await session.scalars(query)).all()
        return [AuditEntry(r.id, r.at, r.actor, r.action, r.target, r.details,
                           r.client_address) for r in rows]

    async def forget_addresses(self, before: dt.datetime) -> int:
        """Retention: client addresses of entries older than ``before`` are removed."""
        async with self.db.write() as session:
            result = await session.execute(update(AuditRow).where(
                AuditRow.at < before, AuditRow.client_address.is_not(None),
                AuditRow.client_address != COMMAND_LINE).values(client_address=None))
            return affected_rows(result)

    async def remove_older_than(self, before: dt.datetime) -> int:
        """Retention: entries older than ``before`` go."""
        async with self.db.write() as session:
            return affected_rows(await session.execute(
                delete(AuditRow).where(AuditRow.at < before)))


