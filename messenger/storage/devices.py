"""Devices and access tokens (tokens stored as sha256, never in the clear)."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from directory.schema import AccountRow
from messenger.storage.tables import AccessTokenRow, CrossSigningSignatureRow, DeviceRow


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def ensure_device(session: AsyncSession, account_id: int, device_id: str,
                        display_name: str | None) -> DeviceRow:
    row = await session.get(DeviceRow, (account_id, device_id))
    if row is None:
        row = DeviceRow(account_id=account_id, device_id=device_id, display_name=display_name)
        session.add(row)
    elif display_name is not None:
        row.display_name = display_name
    await session.flush()
    return row


async def add_token(session: AsyncSession, account_id: int, device_id: str, token: str) -> None:
    session.add(AccessTokenRow(token_sha256=token_digest(token), account_id=account_id,
                               device_id=device_id))
    await session.flush()


async def token_owner(session: AsyncSession, token: str,
                      ) -> tuple[AccountRow, AccessTokenRow] | None:
    found = (await session.execute(
        select(AccountRow, AccessTokenRow)
        .join(AccessTokenRow, AccessTokenRow.account_id == AccountRow.id)
        .where(AccessTokenRow.token_sha256 == token_digest(token)))).first()
    return (found[0], found[1]) if found else None


async def token_device(db: Database, token: str) -> tuple[int, str] | None:
    """(account id, device id) of an access token, in one statement without an ORM
    session: every request whose token is not cached asks (a few times a minute per
    device), so on SQLite it reads on the caller's thread (``read_rows_small``: an
    indexed row, no hop to aiosqlite's thread and back)."""
    rows = await db.read_rows_small("SELECT account_id, device_id FROM matrix_access_tokens "
                              "WHERE token_sha256 = ?", [token_digest(token)])
    return (int(rows[0][0]), str(rows[0][1])) if rows else None


async def touch_device(session: AsyncSession, account_id: int, device_id: str,
                       when: dt.datetime, ip: str | None) -> None:
    await session.execute(update(DeviceRow).where(
        DeviceRow.account_id == account_id, DeviceRow.device_id == device_id)
        .values(last_seen=when, last_seen_ip=ip))


async def delete_token(session: AsyncSession, token: str) -> None:
    await session.execute(delete(AccessTokenRow).where(
        AccessTokenRow.token_sha256 == token_digest(token)))


async def list_devices(session: AsyncSession, account_id: int) -> list[DeviceRow]:
    rows = await session.scalars(select(DeviceRow).where(DeviceRow.account_id == account_id)
                                 .order_by(DeviceRow.device_id))
    return list(rows)


async def get_device(session: AsyncSession, account_id: int, device_id: str) -> DeviceRow | None:
    return await session.get(DeviceRow, (account_id, device_id))


async def delete_devices(session: AsyncSession, account_id: int,
                         device_ids: list[str] | None = None) -> None:
    """Delete devices (all of the account's with None); their tokens go with them."""
    # Delete tokens explicitly: SQLite only cascades with foreign_keys=ON, and
    # the token must be dead even where a connection was opened without it.
    token_query = delete(AccessTokenRow).where(AccessTokenRow.account_id == account_id)
    device_query = delete(DeviceRow).where(DeviceRow.account_id == account_id)
    if device_ids is not None:
        token_query = token_query.where(AccessTokenRow.device_id.in_(device_ids))
        device_query = device_query.where(DeviceRow.device_id.in_(device_ids))
    if device_ids is None:
        device_ids = list(await session.scalars(
            select(DeviceRow.device_id).where(DeviceRow.account_id == account_id)))
    await session.execute(token_query)
    await session.execute(device_query)
    # Signatures made on the devices' keys go with them: a device id used again
    # later must not come back with the old device's signatures merged in.
    if device_ids:
        await session.execute(delete(CrossSigningSignatureRow).where(
            CrossSigningSignatureRow.account_id == account_id,
            CrossSigningSignatureRow.target_key_id.in_(device_ids)))


async def lock_live_devices(session: AsyncSession,
                            devices: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which of ``devices`` still exist, locked against deletion until the commit
    (PostgreSQL ``FOR KEY SHARE``: a concurrent logout waits; SQLite has one writer).
    One driver call (every send batch asks; ``Database.rows_in``)."""
    if not devices:
        return set()
    wanted = sorted(devices)
    where = " OR ".join(["(account_id = ? AND device_id = ?)"] * len(wanted))
    lock = "" if (await session.connection()).dialect.name == "sqlite" else " FOR KEY SHARE"
    rows = await Database.rows_in(
        session, f"SELECT account_id, device_id FROM matrix_devices WHERE {where}{lock}",
        [v for key in wanted for v in key])
    return {(int(a), str(d)) for a, d in rows}
