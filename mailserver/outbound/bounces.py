"""Delivering our DSNs into the sender's INBOX, through the store's delivery transaction.

The DSN travels with the null reverse-path (RFC 5321 4.5.5, RFC 3464 2):
whatever happens to it, it never causes another DSN.  A sender that is no
local account (any more) gets nothing; that is logged, not retried.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from mailserver.delivery import DeliveryTarget, Envelope, LocalRecipient, RecipientOutcome

log = logging.getLogger("schulhof.outbound")


class InboxBounces:
    """``deliver(sender, dsn)``: True when the DSN is durably in the sender's INBOX."""

    def __init__(self, target: DeliveryTarget,
                 find_account: Callable[[str], Awaitable[int | None]]) -> None:
        self._target = target
        self._find_account = find_account

    async def deliver(self, sender: str, message: bytes) -> bool:
        account_id = await self._find_account(sender)
        if account_id is None:
            log.warning("event=dsn_undeliverable reason=no_local_account")
            return False
        transaction = self._target.begin(Envelope("", dt.datetime.now(dt.UTC)))
        outcome = await transaction.add_local(LocalRecipient(account_id), len(message))
        if outcome is not RecipientOutcome.ACCEPTED:
            await transaction.abort()
            log.warning("event=dsn_undeliverable reason=%s account=%d", outcome.value,
                        account_id)
            return False
        await transaction.commit(message)
        return True
