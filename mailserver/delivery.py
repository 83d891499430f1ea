"""The delivery transaction: the contract between SMTP (and later LMTP/bridge) and the store.

Shaped after maddy's delivery target: start, add recipients one by one (each
may be refused on its own, e.g. over quota), then commit the body once for
all accepted recipients, or abort.  ``commit`` returns only after every row
and the body are durably stored, so the SMTP layer may answer 250 after it.
Remote recipients go to the durable outbound queue in the same commit.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class RecipientOutcome(enum.Enum):
    ACCEPTED = "accepted"
    OVER_QUOTA_TEMPORARY = "over_quota_temporary"  # 452 4.2.2
    OVER_QUOTA_PERMANENT = "over_quota_permanent"  # 552 5.2.2 (message alone exceeds quota)


class DeliveryRefused(Exception):
    """The recipients' own rules refused the whole message (a Sieve ``reject``,
    RFC 5429 2.1): SMTP answers 550 5.7.1 with ``reason`` instead of 250."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LocalRecipient:
    """A mailbox to deliver into: an account's folder (INBOX unless a rule says else)."""

    account_id: int
    mailbox: str = "INBOX"
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Envelope:
    mail_from: str  # "" for the null sender (bounces)
    received_at: dt.datetime


@dataclass(frozen=True)
class DeliveryReceipt:
    """What a commit stored: one (account_id, mailbox_id, uid) per local recipient."""

    stored: tuple[tuple[int, int, int], ...]
    queued_ids: tuple[int, ...]


class DeliveryTransaction(Protocol):
    async def add_local(self, recipient: LocalRecipient, size_hint: int = 0) -> RecipientOutcome:
        """Check one local recipient (quota with ``size_hint``) and remember it."""

    async def add_locals(self, recipients: Sequence[LocalRecipient],
                         size_hint: int = 0) -> list[RecipientOutcome]:
        """``add_local`` for many recipients at once (group expansion), in order."""

    def add_remote(self, address: str) -> None:
        """A recipient at another domain: queued for outbound delivery on commit."""

    def redirect_local(self, mailbox: str) -> None:
        """Deliver every local copy into ``mailbox`` instead (e.g. Junk for quarantine)."""

    async def commit(self, message: bytes) -> DeliveryReceipt:
        """Store ``message`` for every accepted recipient; durable when it returns."""

    async def abort(self) -> None:
        """Forget the transaction; nothing of it is stored."""


class DeliveryTarget(Protocol):
    def begin(self, envelope: Envelope) -> DeliveryTransaction: ...
