"""The mail change feed across a school's processes (issue 15).

A delivery committed by one ``serve`` worker must wake an IMAP IDLE held on
another.  The relay sends every change published on this process's
``ChangeFeed`` over the school's ``Broadcast`` (one short line per change:
account, mailbox, HIGHESTMODSEQ, deleted) and publishes what the others send
to this process's listeners only.

A change is a wake-up, not data: the woken session reads the store
(RFC 7162 CHANGEDSINCE).  When notifications may have been lost (the
broadcast reconnected), :meth:`ChangeRelay.catch_up` reads the current
HIGHESTMODSEQ of every mailbox of every account listened to here and offers
it: a session whose view is older refreshes, the others ignore it.
"""

from __future__ import annotations

from sqlalchemy import select

from directory.broadcast import Broadcast
from directory.db import Database
from mailserver.changes import ChangeFeed, MailboxChange
from mailserver.schema import MailboxRow

CHANNEL = "schulhof_mail"


def encode(change: MailboxChange) -> str:
    return (f"{change.account_id} {change.mailbox_id} {change.highestmodseq} "
            f"{int(change.deleted)}")


def decode(payload: str) -> MailboxChange:
    """Raises ValueError on anything but four integers."""
    account, mailbox, modseq, deleted = (int(part) for part in payload.split(" "))
    return MailboxChange(account, mailbox, modseq, deleted=bool(deleted))


class ChangeRelay:
    """Connects one ``ChangeFeed`` to a ``Broadcast`` (both directions)."""

    def __init__(self, feed: ChangeFeed, broadcast: Broadcast, db: Database) -> None:
        self._feed = feed
        self._broadcast = broadcast
        self._db = db
        self.received = 0
        broadcast.listen(CHANNEL, self._receive)
        broadcast.on_reconnect(self.catch_up)
        feed.relay = self._send

    def _send(self, change: MailboxChange) -> None:
        self._broadcast.send(CHANNEL, encode(change))

    def _receive(self, payload: str) -> None:
        self.received += 1
        self._feed.publish_local(decode(payload))

    async def catch_up(self) -> None:
        """Offer every listened-to mailbox's current HIGHESTMODSEQ (missed wake-ups)."""
        accounts = self._feed.subscribed_accounts()
        if not accounts:
            return
        async with self._db.read() as session:
            rows = (await session.execute(
                select(MailboxRow.account_id, MailboxRow.id, MailboxRow.highestmodseq)
                .where(MailboxRow.account_id.in_(accounts)))).all()
        for account_id, mailbox_id, modseq in rows:
            self._feed.publish_local(MailboxChange(account_id, mailbox_id, modseq))
