"""Group commit of message sends (spec: Client-Server API 9.6 "PUT
/rooms/{roomId}/send/{eventType}/{txnId}": each request still gets its own event
or its own error).

Sends that arrive while a write transaction runs wait together and go into the
next one: one BEGIN, one look-up of transaction ids, one INSERT per table and
one COMMIT (one fsync) for the lot, instead of each per message.  The database
round trips, not the CPU, limit how many messages a second one writer stores.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from messenger.identity import Requester

MAX_BATCH = 200


@dataclass(frozen=True)
class MessageSend:
    requester: Requester
    room_id: str
    event_type: str
    content: Mapping[str, Any]
    txn_id: str | None


# Given the sends, returns per send its event (StoredEvent) or the exception to raise.
Process = Callable[[list[MessageSend]], Awaitable[list[Any]]]


class SendBatcher:
    """Collects sends and hands them to ``process`` in batches, one batch at a time."""

    def __init__(self, process: Process) -> None:
        self._process = process
        self._pending: list[tuple[MessageSend, asyncio.Future[Any]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, send: MessageSend) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((send, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                results = await self._process([send for send, _ in batch])
            except BaseException as exc:  # the whole batch failed: each sender hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue  # the sender went away; its event stands (txn ids make it safe)
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
