"""A recording DeliveryTarget for session tests (no mail store)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from mailserver.delivery import (
    DeliveryReceipt,
    Envelope,
    LocalRecipient,
    RecipientOutcome,
)


@dataclass
class FakeTransaction:
    target: FakeTarget
    envelope: Envelope
    local: list[int] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)
    size_hints: list[int] = field(default_factory=list)
    committed: bytes | None = None
    aborted: bool = False

    async def add_local(self, recipient: LocalRecipient, size_hint: int = 0) -> RecipientOutcome:
        self.size_hints.append(size_hint)
        outcome = self.target.outcomes.get(recipient.account_id, RecipientOutcome.ACCEPTED)
        if outcome is RecipientOutcome.ACCEPTED:
            self.local.append(recipient.account_id)
        return outcome

    async def add_locals(self, recipients: list[LocalRecipient],
                         size_hint: int = 0) -> list[RecipientOutcome]:
        return [await self.add_local(recipient, size_hint) for recipient in recipients]

    def add_remote(self, address: str) -> None:
        self.remote.append(address)

    def redirect_local(self, mailbox: str) -> None:
        pass

    async def commit(self, message: bytes) -> DeliveryReceipt:
        if self.target.commit_delay:
            await asyncio.sleep(self.target.commit_delay)
        self.committed = message
        return DeliveryReceipt(tuple((a, 1, 1) for a in self.local), tuple(
            range(len(self.remote))))

    async def abort(self) -> None:
        self.aborted = True


@dataclass
class FakeTarget:
    outcomes: dict[int, RecipientOutcome] = field(default_factory=dict)
    transactions: list[FakeTransaction] = field(default_factory=list)
    commit_delay: float = 0.0

    def begin(self, envelope: Envelope) -> FakeTransaction:
        tx = FakeTransaction(self, envelope)
        self.transactions.append(tx)
        return tx

    @property
    def committed(self) -> list[FakeTransaction]:
        return [t for t in self.transactions if t.committed is not None]
