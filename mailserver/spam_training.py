"""Training the spam filter from users' Junk decisions.

``JunkTrainer.filed`` observes the store (``MailStore.filing_observers``):
messages moved or copied into Junk are learned as spam, messages taken out
of Junk (anywhere but Trash) as ham, over IMAP and the webmail alike.  The
learning runs as a task of its own, so the IMAP MOVE is not delayed; a failure
is logged (``federation.rspamd.RspamdClient.learn`` never raises).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mailserver.store.service import Filed

log = logging.getLogger("schulhof.spam")

MAX_PER_MOVE = 50  # a user emptying a huge folder into Junk trains on the first ones


class JunkTrainer:
    def __init__(self, read_blob: Callable[[str], Awaitable[bytes]],
                 learn: Callable[..., Awaitable[bool]]) -> None:
        self._read_blob = read_blob
        self._learn = learn
        self._tasks: set[asyncio.Task[None]] = set()
        self.learned = 0

    def filed(self, filed: Filed) -> None:
        task = asyncio.ensure_future(self._train(filed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _train(self, filed: Filed) -> None:
        kind = "spam" if filed.into_junk else "ham"
        learned = 0
        for blob_id in dict.fromkeys(filed.blob_ids[:MAX_PER_MOVE]):
            try:
                message = await self._read_blob(blob_id)
            except Exception:  # the message was purged meanwhile
                continue
            if await self._learn(message, spam=filed.into_junk):
                learned += 1
        self.learned += learned
        log.info("event=spam_trained kind=%s account=%s messages=%d learned=%d", kind,
                 filed.account_id, len(filed.blob_ids), learned)

    async def wait(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
