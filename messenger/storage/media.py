"""Rows of uploaded media (the bytes are files, see messenger.media)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from messenger.storage.tables import MediaRow


async def add(session: AsyncSession, *, media_id: str, sha256: str, content_type: str,
              upload_name: str | None, size: int, account_id: int) -> None:
    session.add(MediaRow(media_id=media_id, sha256=sha256, content_type=content_type,
                         upload_name=upload_name, size=size, account_id=account_id))
    await session.flush()


async def get(session: AsyncSession, media_id: str) -> MediaRow | None:
    return await session.get(MediaRow, media_id)
