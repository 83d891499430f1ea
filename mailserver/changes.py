"""The change feed: wakes IMAP IDLE sessions and the messenger bridge after a commit.

In-process publish/subscribe keyed by account (optionally one mailbox).  A
subscription never queues: it keeps, per mailbox, only the latest change and
one wake-up flag, so a slow listener costs memory bounded by the number of its
mailboxes, and a listener that wakes up reads the store for what changed
(RFC 7162 CHANGEDSINCE) instead of replaying events.  One feed per MailStore,
never global: two schools in one process do not hear each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class MailboxChange:
    """A mailbox changed; ``highestmodseq`` is its value after the commit.

    ``deleted`` marks a deleted mailbox (its id is then gone from the store).
    """

    account_id: int
    mailbox_id: int
    highestmodseq: int
    deleted: bool = False


class Subscription:
    """One listener's coalesced view of changes; use as a context manager."""

    def __init__(self, feed: ChangeFeed, account_id: int, mailbox_id: int | None) -> None:
        self._feed = feed
        self.account_id = account_id
        self.mailbox_id = mailbox_id
        self._pending: dict[int, MailboxChange] = {}
        self._event = asyncio.Event()
        self.closed = False

    def _offer(self, change: MailboxChange) -> None:
        if self.mailbox_id is not None and change.mailbox_id != self.mailbox_id:
            return
        old = self._pending.get(change.mailbox_id)
        if old is None or change.deleted or change.highestmodseq >= old.highestmodseq:
            self._pending[change.mailbox_id] = change
        self._event.set()

    def pending(self) -> list[MailboxChange]:
        """Take the changes seen since the last call (without waiting)."""
        changes = list(self._pending.values())
        self._pending.clear()
        self._event.clear()
        return changes

    async def wait(self, timeout: float | None = None) -> list[MailboxChange]:
        """Wait until something changed (or ``timeout``); returns the coalesced changes."""
        if not self._pending:
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return []
        return self.pending()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._feed._remove(self)
            self._event.set()  # let a waiter return instead of hanging

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aiter__(self) -> AsyncIterator[list[MailboxChange]]:
        while not self.closed:
            changes = await self.wait()
            if changes:
                yield changes


class ChangeFeed:
    """Per-store publish/subscribe of mailbox changes.

    ``relay``, when set (``mailserver.change_relay``), is told every change
    published here so the school's other processes hear it too; what they
    relay arrives through :meth:`publish_local`.
    """

    def __init__(self) -> None:
        self._subscribers: dict[int, set[Subscription]] = {}
        self.relay: Callable[[MailboxChange], None] | None = None

    def subscribe(self, account_id: int, mailbox_id: int | None = None) -> Subscription:
        subscription = Subscription(self, account_id, mailbox_id)
        self._subscribers.setdefault(account_id, set()).add(subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.account_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.account_id]

    def publish(self, change: MailboxChange) -> None:
        """Called by the store after a commit (never before: listeners read the store)."""
        self.publish_local(change)
        if self.relay is not None:
            self.relay(change)

    def publish_local(self, change: MailboxChange) -> None:
        """A change to tell this process's listeners only (another process committed it)."""
        for subscription in list(self._subscribers.get(change.account_id, ())):
            subscription._offer(change)

    def subscribed_accounts(self) -> list[int]:
        """Accounts somebody in this process listens to (for a catch-up)."""
        return list(self._subscribers)

    def subscriber_count(self, account_id: int) -> int:
        return len(self._subscribers.get(account_id, ()))
