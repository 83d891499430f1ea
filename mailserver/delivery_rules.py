"""Rules applied after local delivery: vacation replies and forwarding.

``RulesTarget`` wraps the store's ``DeliveryTarget`` (the SMTP listeners and
the webmail's Submitter deliver through it): once a delivery has committed,
each rule (``mailserver.vacation.VacationResponder``,
``mailserver.forwarding.Forwarder``) is told which accounts received the
message.  Rules never delay or fail the delivery itself: they run after the
commit and their errors are logged.  Mail the delivery quarantined (Junk) is
not answered or forwarded.  A stand-in for Sieve (RFC 5228) until it exists.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from mailserver.delivery import (
    DeliveryReceipt,
    DeliveryTarget,
    DeliveryTransaction,
    Envelope,
    LocalRecipient,
    RecipientOutcome,
)

log = logging.getLogger("schulhof.delivery_rules")


class AfterDelivery(Protocol):
    async def delivered(self, envelope: Envelope, account_ids: Sequence[int],
                        message: bytes) -> None: ...


class RulesTarget:
    """A ``DeliveryTarget`` that tells its rules about every committed delivery."""

    def __init__(self, target: DeliveryTarget, rules: Sequence[AfterDelivery]) -> None:
        self._target = target
        self.rules = tuple(rules)

    def begin(self, envelope: Envelope) -> DeliveryTransaction:
        return _Transaction(self._target.begin(envelope), envelope, self.rules)

    def __getattr__(self, name: str) -> object:  # the store's other methods pass through
        return getattr(self._target, name)


class _Transaction:
    def __init__(self, inner: DeliveryTransaction, envelope: Envelope,
                 rules: Sequence[AfterDelivery]) -> None:
        self._inner = inner
        self._envelope = envelope
        self._rules = rules
        self._quarantined = False

    async def add_local(self, recipient: LocalRecipient, size_hint: int = 0) -> RecipientOutcome:
        return await self._inner.add_local(recipient, size_hint)

    async def add_locals(self, recipients: Sequence[LocalRecipient],
                         size_hint: int = 0) -> list[RecipientOutcome]:
        return await self._inner.add_locals(recipients, size_hint)

    def add_remote(self, address: str) -> None:
        self._inner.add_remote(address)

    def redirect_local(self, mailbox: str) -> None:
        self._quarantined = True  # suspected spam: a reply or forward would spread it
        self._inner.redirect_local(mailbox)

    async def commit(self, message: bytes) -> DeliveryReceipt:
        receipt = await self._inner.commit(message)
        account_ids = sorted({account_id for account_id, _box, _uid in receipt.stored})
        if account_ids and not self._quarantined:
            for rule in self._rules:
                try:
                    await rule.delivered(self._envelope, account_ids, message)
                except Exception:  # the mail is delivered; a rule's problem is only logged
                    log.exception("event=delivery_rule_failed rule=%s",
                                  type(rule).__name__)
        return receipt

    async def abort(self) -> None:
        await self._inner.abort()
