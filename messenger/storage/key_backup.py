"""Server-side key backup versions and their session keys (storage layer)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import affected_rows
from messenger.storage.tables import KeyBackupSessionRow, KeyBackupVersionRow


async def latest_version(session: AsyncSession, account_id: int, *,
                         for_update: bool = False) -> KeyBackupVersionRow | None:
    """The newest version not deleted (the "current" backup)."""
    query = select(KeyBackupVersionRow).where(
        KeyBackupVersionRow.account_id == account_id, KeyBackupVersionRow.deleted.is_(False)
    ).order_by(KeyBackupVersionRow.version.desc()).limit(1)
    return await session.scalar(query.with_for_update() if for_update else query)


async def get_version(session: AsyncSession, account_id: int,
                      version: int) -> KeyBackupVersionRow | None:
    """The version, deleted or not."""
    return await session.get(KeyBackupVersionRow, (account_id, version))


async def add_version(session: AsyncSession, account_id: int, algorithm: str,
                      auth_data: str) -> int:
    # Deleted versions count: a version number is never handed out twice.
    last = await session.scalar(select(func.max(KeyBackupVersionRow.version)).where(
        KeyBackupVersionRow.account_id == account_id))
    version = (last or 0) + 1
    session.add(KeyBackupVersionRow(account_id=account_id, version=version, algorithm=algorithm,
                                    auth_data=auth_data, etag=0, deleted=False))
    await session.flush()
    return version


def _matching(account_id: int, version: int, room_id: str | None,
              session_id: str | None) -> list[ColumnElement[bool]]:
    """The conditions for a version's keys, of one room, of one session."""
    conditions = [KeyBackupSessionRow.account_id == account_id,
                  KeyBackupSessionRow.version == version]
    if room_id is not None:
        conditions.append(KeyBackupSessionRow.room_id == room_id)
    if session_id is not None:
        conditions.append(KeyBackupSessionRow.session_id == session_id)
    return conditions


async def sessions(session: AsyncSession, account_id: int, version: int,
                   room_id: str | None = None,
                   session_id: str | None = None) -> Sequence[KeyBackupSessionRow]:
    return (await session.scalars(
        select(KeyBackupSessionRow).where(*_matching(account_id, version, room_id, session_id))
        .order_by(KeyBackupSessionRow.room_id, KeyBackupSessionRow.session_id))).all()


async def count_sessions(session: AsyncSession, account_id: int, version: int) -> int:
    return (await session.scalar(select(func.count()).select_from(KeyBackupSessionRow).where(
        KeyBackupSessionRow.account_id == account_id,
        KeyBackupSessionRow.version == version))) or 0


async def get_session(session: AsyncSession, account_id: int, version: int, room_id: str,
                      session_id: str) -> KeyBackupSessionRow | None:
    return await session.get(KeyBackupSessionRow, (account_id, version, room_id, session_id))


async def delete_sessions(session: AsyncSession, account_id: int, version: int,
                          room_id: str | None = None, session_id: str | None = None) -> int:
    """Delete the version's keys (of one room, of one session); returns how many went."""
    query = delete(KeyBackupSessionRow).where(
        *_matching(account_id, version, room_id, session_id))
    result = await session.execute(query)
    return affected_rows(result)
