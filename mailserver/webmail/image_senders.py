"""Senders whose remote images a reader always wants to see ("Bilder von ... immer
anzeigen"), per account, by the address in From (RFC 5322 3.6.2).

Remote images are blocked so that a sender cannot see when (and whether) a mail
is read; a reader who trusts a newsletter's sender can lift that for the
sender once instead of for every message.  A forged From gets the same trust,
as in other webmail programs: the cost is a loaded image, nothing runs.
"""

from __future__ import annotations

import email.utils

from sqlalchemy import delete, select

from directory.db import Database
from directory.schema import table_of
from mailserver.schema import ImageSenderRow
from mailserver.store import queries as q

_senders = table_of(ImageSenderRow)
MAX_ADDRESS = 320  # RFC 5321 4.5.3.1


def sender_address(from_header: str) -> str:
    """The address of a From header, case-folded; "" when there is none."""
    try:
        address = email.utils.parseaddr(from_header)[1]
    except Exception:  # hostile header text: no address, nothing remembered
        return ""
    address = address.strip().casefold()
    if "@" not in address or len(address) > MAX_ADDRESS or not address.isprintable():
        return ""
    return address


class ImageSenders:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def trusted(self, account_id: int, address: str) -> bool:
        if not address:
            return False
        async with self._db.read() as session:
            return await session.scalar(select(_senders.c.sender).where(
                _senders.c.account_id == account_id,
                _senders.c.sender == address)) is not None

    async def trust(self, account_id: int, address: str) -> None:
        if not address:
            return
        async with self._db.write() as session:
            await session.execute(q.insert_ignoring_conflict(session, _senders).values(
                account_id=account_id, sender=address))

    async def forget(self, account_id: int, address: str) -> None:
        async with self._db.write() as session:
            await session.execute(delete(_senders).where(
                _senders.c.account_id == account_id, _senders.c.sender == address))
