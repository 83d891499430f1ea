"""Forwarding at local delivery: a copy of each message to another address of
the school, the account keeping its own copy.

The copy goes out through the normal submission path as the account
(``mailserver.submission.Submitter``: the role policy applies), with the
envelope sender being the account, unchanged otherwise but for one trace
field ``X-Schulhof-Forwarded-By`` (compare Resent-* in RFC 5322 3.6.6):
a message that already passed this account's forwarding, or more than
``MAX_HOPS`` of them, is not forwarded again, so two accounts forwarding to
each other cannot loop.  Only addresses of the school's own domain are
accepted as targets (checked when the setting is saved, ``forward_target``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from directory.model import Account
from mailserver.delivery import Envelope
from mailserver.store.account_settings import SettingsStore
from mailserver.vacation import Send, _header_block

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


@dataclass
class Forwarder:
    settings: SettingsStore
    accounts: Callable[[int], Awaitable[Account]]
    domain: str
    send: Send | None = None

    def __post_init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    async def delivered(self, envelope: Envelope, account_ids: Sequence[int],
                        message: bytes) -> None:
        if self.send is None:
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
                assert self.send is not None
                await self.send(account, own, [target],
                                f"{TRACE}: {own}\r\n".encode() + message)
                log.info("event=forwarded account=%s", account.login)
            except Exception:  # one account's failure must not stop the others
                log.exception("event=forward_failed account=%s", account_id)

    async def wait(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
