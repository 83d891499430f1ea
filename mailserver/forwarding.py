"""Forwarding at local delivery: a copy of each message to another address of
the school, the account keeping its own copy.

Like a Sieve ``redirect`` (RFC 5228 4.2) the message is delivered unchanged
(its From stays the original sender's, which is why it does not go through
the submission path that allows only one's own From) but for one trace field
``X-Schulhof-Forwarded-By``; the envelope sender is the forwarding account.
Only school addresses are targets (checked when the setting is saved,
``forward_target``), the role policy is asked again at each forward
(``deliver`` in the wiring), and the copy is delivered past the delivery
rules, so it is never forwarded or answered again: no loops.  A message that
already passed this account's forwarding, or ``MAX_HOPS`` of them, stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from directory.model import Account
from mailserver.delivery import Envelope
from mailserver.store.account_settings import SettingsStore
from mailserver.vacation import _header_block

log = logging.getLogger("schulhof.forwarding")

TRACE = "X-Schulhof-Forwarded-By"
MAX_HOPS = 3


def forward_target(text: str, domain: str) -> str | None:
    """The forwarding address to store: a bare login is completed, only our domain."""
    address = text.strip().lower()
    if not address:
        return None
    if "@" not in address:
        address = f"{address}@{domain}"
    local, _, host = address.rpartition("@")
    if not local or host != domain or any(c in local for c in ' <>,;"\\'):
        raise ValueError(address)
    return address


# (account, its own address, target address, message): the local delivery.
Deliver = Callable[[Account, str, str, bytes], Awaitable[object]]


@dataclass
class Forwarder:
    settings: SettingsStore
    accounts: Callable[[int], Awaitable[Account]]
    domain: str
    deliver: Deliver | None = None

    def __post_init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    async def delivered(self, envelope: Envelope, account_ids: Sequence[int],
                        message: bytes) -> None:
        if self.deliver is None:
            return
        forwarding = await self.settings.forwarding_accounts(account_ids)
        if not forwarding:
            return
        task = asyncio.ensure_future(self._forward(sorted(forwarding), message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, account_ids: list[int], message: bytes) -> None:
        passed = [str(v).strip().lower()
                  for v in _header_block(message).get_all(TRACE) or []]
        if len(passed) >= MAX_HOPS:
            return
        for account_id in account_ids:
            try:
                settings = await self.settings.get(account_id)
                account = await self.accounts(account_id)
                own = f"{account.login}@{self.domain}"
                target = settings.forward_to
                if not target or not account.is_active or own in passed or target == own:
                    continue
                assert self.deliver is not None
                await self.deliver(account, own, target,
                                   f"{TRACE}: {own}\r\n".encode() + message)
                log.info("event=forwarded account=%s", account.login)
            except Exception:  # one account's failure must not stop the others
                log.exception("event=forward_failed account=%s", account_id)

    async def wait(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
